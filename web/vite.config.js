import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build goes inside the Python package, so `pip install .` serves the page without Node.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../src/sheetstream/web",
    emptyOutDir: true,
    assetsDir: "assets",
  },
  server: { proxy: { "/exports": "http://127.0.0.1:8000", "/imports": "http://127.0.0.1:8000",
                     "/jobs": "http://127.0.0.1:8000", "/tables": "http://127.0.0.1:8000" } },
});
