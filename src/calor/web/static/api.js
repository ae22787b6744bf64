// The REST API, called with the token of this browser tab (sessionStorage, never the URL).

const KEY = "calor.token";

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let unauthorized = () => {};

export function onUnauthorized(handler) {
  unauthorized = handler;
}

// paths are relative ("tasks/…"), so a dashboard behind a proxy under a prefix still works
export async function api(path, options = {}) {
  const { method = "GET", body, as = "json" } = options;
  const token = options.token ?? session.token;
  const headers = { Authorization: token || "" };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (!response.ok) {
    let message = "";
    try {
      const data = await response.json();
      message = data.message || data.error || "";
    } catch {
      // not JSON: the status says enough
    }
    const error = new ApiError(response.status, message || `${response.status} ${response.statusText}`);
    if (response.status === 401 && options.token === undefined) unauthorized(error);
    throw error;
  }
  if (as === "text") return response.text();
  if (as === "blob") return response.blob();
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const enc = encodeURIComponent;
