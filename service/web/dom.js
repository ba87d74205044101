// Building HTML without innerHTML: every text from the API goes in as a text node.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function ago(iso) {
  if (!iso) return "–";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h ago`;
  return `${(seconds / 86400).toFixed(1)} d ago`;
}

export function progressBar(done, total, label) {
  const share = total > 0 ? Math.min(done / total, 1) : 0;
  return h(
    "span",
    { class: "progress", title: label || `${done} / ${total}`, "data-done": done, "data-total": total },
    h("span", { class: "bar", style: `width:${(share * 100).toFixed(1)}%` }),
    h("span", { class: "label" }, label || `${done} / ${total}`),
  );
}
