// The page's only way to the server: hone's public REST API under api/v1 and a study's
// events stream, with the token the user gave (kept in sessionStorage: this tab only).

const TOKEN_KEY = "hone-token";
const API = "api/v1";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${token()}`, ...extra };
}

async function answer(response) {
  if (response.status === 401) {
    throw new Unauthorized("the token was refused");
  }
  if (response.status === 204) {
    return null;
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body && body.detail !== undefined ? body.detail : response.statusText);
  }
  return body;
}

export async function get(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
  const url = `${API}${path}${query.toString() ? `?${query}` : ""}`;
  return answer(await fetch(url, { headers: headers() }));
}

export async function post(path, body = undefined) {
  const init = { method: "POST", headers: headers({ "Content-Type": "application/json" }) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(`${API}${path}`, init));
}

// EventSource cannot send an Authorization header, so the stream is read with fetch().
// It reconnects (with Last-Event-ID) until `signal` aborts; onEvent(name, data) per event.
export async function streamEvents(path, onEvent, signal, onState = () => {}) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId) {
        extra["Last-Event-ID"] = lastId;
      }
      const response = await fetch(`${API}${path}`, { headers: headers(extra), signal });
      if (response.status === 401) {
        onState("refused");
        return;
      }
      if (!response.ok || !response.body) {
        throw new Error(`events answered ${response.status}`);
      }
      onState("open");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        buffer += value;
        // sse-starlette ends lines with CRLF; a CR at the end may still meet its LF.
        if (!buffer.endsWith("\r")) {
          buffer = buffer.replace(/\r\n?/g, "\n");
        }
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { name: "message", data: [] };
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon <= 0) {
              continue; // a comment (the server's ping) or an empty line
            }
            const field = line.slice(0, colon);
            const text = line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event.name = text;
            else if (field === "data") event.data.push(text);
            else if (field === "id") lastId = text;
          }
          if (event.data.length) {
            onEvent(event.name, JSON.parse(event.data.join("\n")));
          }
        }
      }
    } catch (error) {
      if (signal.aborted) {
        return;
      }
    }
    onState("closed");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
