// Shared by every Counterpoint widget (concatenated before each widget's own module).
// The kernel computes; this file only asks for data and builds DOM and SVG elements.

const SVG_NS = "http://www.w3.org/2000/svg";

// h("div", {class: "x", onclick: f}, child, "text", ...) -> an HTML element
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// s("rect", {x: 1}) -> an SVG element
function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "text") {
      node.textContent = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

// Requests to the kernel: request(model, "window", {lo, hi}) -> Promise<{reply, buffers}>.
// The kernel answers {"type": "reply", "id": N, ...}; an answer with "error" rejects.
function requester(model) {
  let next = 1;
  const pending = new Map();
  const onMessage = (msg, buffers) => {
    if (!msg || msg.type !== "reply" || !pending.has(msg.id)) return;
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) reject(new Error(msg.error));
    else resolve({ reply: msg, buffers: buffers || [] });
  };
  model.on("msg:custom", onMessage);
  const request = (what, params) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      model.send({ type: "request", id, what, ...(params || {}) });
    });
  request.dispose = () => model.off("msg:custom", onMessage);
  return request;
}

// A DataView/ArrayBuffer from the kernel as an Int32Array (little-endian, as Python packs it)
function int32s(buffer) {
  if (!buffer) return new Int32Array(0);
  const bytes = buffer.buffer ? buffer : new DataView(buffer);
  return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

// A DataView/ArrayBuffer from the kernel as a Float64Array (little-endian)
function float64s(buffer) {
  if (!buffer) return new Float64Array(0);
  const bytes = buffer.buffer ? buffer : new DataView(buffer);
  return new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}
