// Talking to /admin/api. The page authenticates with its session cookie;
// state-changing requests carry the CSRF token from GET api/session.

export const API = "../admin/api";

const session = { csrf: null };

function goLogin() {
  window.location.assign("login?reason=expired");
}

// GET/POST JSON. Resolves to { status, ok, data, notServed }; 401 sends the
// browser to the login page. `notServed` is true for a 404 that is not one of
// our JSON errors: the endpoint does not exist on this server (yet).
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = session.csrf || "";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      // The page's policy is no-referrer, under which a POST's Origin is
      // "null"; same-origin sends our real origin (to ourselves only), which
      // the server checks.
      referrerPolicy: "same-origin",
    });
  } catch (e) {
    throw new Error(`cannot reach the server (${e.message})`);
  }
  if (response.status === 401) {
    goLogin();
    throw new Error("the session ended");
  }
  const isJson = (response.headers.get("content-type") || "").includes("application/json");
  const data = isJson ? await response.json().catch(() => null) : null;
  const notServed = response.status === 404 && !(data && data.error);
  return { status: response.status, ok: response.ok, data, notServed };
}

// GET that must succeed (or be absent): throws on errors, returns null
// when the endpoint is not served.
export async function load(path) {
  const r = await request("GET", path);
  if (r.notServed) return null;
  if (!r.ok) throw new Error((r.data && r.data.error) || `GET ${path} answered ${r.status}`);
  return r.data;
}

// (Re)read the session's CSRF token.
export async function loadSession() {
  const r = await request("GET", "api/session");
  if (!r.ok || !r.data) throw new Error("could not read the session");
  session.csrf = r.data.csrf_token;
}
