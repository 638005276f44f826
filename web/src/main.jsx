import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import Access from "./Access.jsx";
import App from "./App.jsx";
import "./styles.css";

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <Access>
      <App />
    </Access>
  </StrictMode>,
);
