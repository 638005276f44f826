import { useEffect, useState } from "react";
import { fetchSession, signIn, signOut } from "./api.js";

// Who is signed in. A token in the address (#token=..., as the server prints it at start: a fragment never reaches
// a server or its logs; ?token=... from older links too) is exchanged for a session cookie and removed from the
// address bar and the history at once; without one, a small form asks.
export default function Access({ children }) {
  const [session, setSession] = useState(null);
  const [problem, setProblem] = useState(null);

  // ``acted``: the person gave a token (in the address or the form); before that, not being signed in is no error.
  async function enter(answer, acted) {
    if (answer.signedIn) {
      setSession(answer);
      setProblem(null);
    } else {
      setSession(false);
      setProblem(acted ? (answer.message ?? `Sign-in failed (HTTP ${answer.status})`) : null);
    }
  }

  useEffect(() => {
    const url = new URL(window.location.href);
    const fragment = new URLSearchParams(url.hash.slice(1));
    const token = fragment.get("token") || url.searchParams.get("token");
    if (token) {
      url.searchParams.delete("token");
      fragment.delete("token");
      const hash = fragment.toString();
      window.history.replaceState(null, "", url.pathname + url.search + (hash ? `#${hash}` : ""));
      signIn(token).then((answer) => enter(answer, true));
    } else {
      fetchSession().then((answer) => enter(answer, false));
    }
  }, []);

  if (session === null) return <main><p>Loading…</p></main>;
  if (session === false) return <SignIn problem={problem} onToken={(token) => signIn(token).then((answer) => enter(answer, true))} />;
  return (
    <>
      {session.auth && (
        <div className="who" data-testid="signed-in">
          Signed in as <strong>{session.name}</strong>
          {session.admin ? " (admin)" : ""}
          {session.kind === "session" && (
            <button type="button" className="link" onClick={() => signOut().then(() => setSession(false))}>
              Sign out
            </button>
          )}
        </div>
      )}
      {children}
    </>
  );
}

function SignIn({ problem, onToken }) {
  const [token, setToken] = useState("");
  return (
    <main>
      <header>
        <h1>sheetstream</h1>
        <p>Sign in with an API token (sheetstream token create), or open the URL the server printed at start.</p>
      </header>
      <form
        className="sign-in"
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) onToken(token.trim());
        }}
      >
        <label htmlFor="token">Token</label>
        <input id="token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />
        <button type="submit">Sign in</button>
      </form>
      {problem && <p role="alert" className="error" data-testid="sign-in-problem">{problem}</p>}
    </main>
  );
}
