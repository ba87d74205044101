// The page's router (#/, #/studies/ID, #/fleet) and its token prompt: nothing is asked of
// the API before the user gives a token, and a refused token brings the prompt back.

import { forgetToken, get, setToken, token, Unauthorized } from "./api.js";
import { h } from "./dom.js";
import { renderFleet } from "./fleet.js";
import { renderStudies } from "./studies.js";
import { renderStudy } from "./study.js";

const view = document.getElementById("view");
const prompt = document.getElementById("token-prompt");
const live = document.getElementById("live");
const forget = document.getElementById("forget-token");
let leave = () => {};

function setLive(state) {
  live.hidden = state === "off";
  live.dataset.state = state;
  live.textContent = state === "open" ? "● live" : "○ reconnecting";
}

function askForToken(message) {
  leave();
  leave = () => {};
  view.replaceChildren();
  prompt.hidden = false;
  forget.hidden = true;
  const error = document.getElementById("token-error");
  error.hidden = !message;
  error.textContent = message || "";
  document.getElementById("token-input").focus();
}

async function route() {
  if (!token()) {
    askForToken();
    return;
  }
  prompt.hidden = true;
  forget.hidden = false;
  leave();
  leave = () => {};
  const hash = location.hash.replace(/^#/, "") || "/";
  const study = hash.match(/^\/studies\/(\d+)$/);
  document.querySelectorAll("[data-nav]").forEach((a) => {
    a.classList.toggle("here", a.dataset.nav === (hash === "/fleet" ? "fleet" : "studies"));
  });
  view.dataset.page = study ? "study" : hash === "/fleet" ? "fleet" : "studies";
  view.dataset.ready = "false";
  try {
    if (study) leave = await renderStudy(view, Number(study[1]), setLive);
    else if (hash === "/fleet") leave = await renderFleet(view);
    else leave = await renderStudies(view);
    view.dataset.ready = "true";
  } catch (error) {
    if (error instanceof Unauthorized) {
      forgetToken();
      askForToken("That token was refused (unknown or revoked). Try another.");
      return;
    }
    view.replaceChildren(h("p", { class: "error" }, error.message));
    view.dataset.ready = "error";
  }
}

document.getElementById("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  setToken(input.value.trim());
  input.value = "";
  try {
    await get("/studies", { limit: 1 });
  } catch (error) {
    forgetToken();
    askForToken(error instanceof Unauthorized ? "That token was refused (unknown or revoked)." : error.message);
    return;
  }
  route();
});

forget.addEventListener("click", () => {
  forgetToken();
  askForToken();
});

window.addEventListener("hashchange", route);
route();
