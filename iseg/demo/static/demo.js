"use strict";
// The iseg demo page: one image, prompts drawn on canvases, everything else on the server (/api/*).
const $ = (id) => document.getElementById(id);
let state = null;           // the server's session state (GET /api/state)
let promptKinds = [];       // what this checkpoint's network takes (from /api/status)
let drag = null;            // the prompt being drawn: {kind, positive, points}
let queue = Promise.resolve();  // prompts are sent one after another, in order
let overlayWanted = -1;

const HINTS = {
  click: "click on the object (left: positive, right: negative)",
  scribble: "draw a stroke on the object (left button) or on the background (right button)",
  box: "drag a box around the object",
};

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const body = isJson ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? body.detail : `${response.status} ${response.statusText}`;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function act(path, options) {
  try {
    const next = await api(path, options);
    showError("");
    render(next);
  } catch (error) {
    showError(error.message);
  }
}

// ---- model loading -------------------------------------------------------------------------
async function pollStatus() {
  let status;
  try {
    status = await api("/api/status");
  } catch (error) {
    $("status").textContent = `server unreachable (${error.message})`;
    setTimeout(pollStatus, 1000);
    return;
  }
  $("progress").max = status.steps;
  $("progress").value = status.step;
  if (status.state === "loading") {
    $("status").textContent = `${status.stage}… (step ${status.step + 1} of ${status.steps}, ${status.elapsed_s} s)`;
    setTimeout(pollStatus, 300);
    return;
  }
  if (status.state === "error") {
    $("status").textContent = `the model could not be loaded (${status.stage})`;
    $("status").classList.add("error");
    showError(status.error);
    document.body.dataset.model = "error";
    return;
  }
  $("progress").hidden = true;
  $("status").textContent = `${status.network} from ${status.checkpoint} ready (loaded in ${status.elapsed_s} s)`;
  promptKinds = status.prompt_kinds;
  buildKinds();
  $("file").disabled = false;
  document.body.dataset.model = "ready";
  render(await api("/api/state"));
}

function buildKinds() {
  $("kinds").innerHTML = "";
  promptKinds.forEach((name, index) => {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="kind" value="${name}" ${index === 0 ? "checked" : ""}> ${name}`;
    $("kinds").appendChild(label);
  });
  $("kinds").addEventListener("change", updateHint);
  updateHint();
}

function currentKind() {
  const checked = document.querySelector('input[name="kind"]:checked');
  return checked ? checked.value : promptKinds[0];
}

function updateHint() {
  const kind = currentKind();
  if (!state || !state.image) {
    $("hint").textContent = "Open an image to start.";
    return;
  }
  const size = `${state.image.name}, ${state.image.width}x${state.image.height} px`;
  $("hint").textContent = `${size}. Prompt: ${HINTS[kind] || kind}.`;
}

// ---- image ---------------------------------------------------------------------------------
$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  $("hint").textContent = `opening ${file.name}…`;
  await act("/api/image", { method: "POST", body: form });
  $("file").value = "";
  updateHint();
});

function loadImage(version) {
  const image = new Image();
  image.onload = () => {
    for (const id of ["image", "overlay", "marks"]) {
      $(id).width = image.naturalWidth;
      $(id).height = image.naturalHeight;
    }
    $("image").getContext("2d").drawImage(image, 0, 0);
    fitStage();
    document.body.dataset.imageVersion = String(version);
    drawMarks();
    refreshOverlay(true);
  };
  image.onerror = () => showError("the working image could not be shown");
  image.src = `/api/image.png?v=${version}`;
}

function fitStage() {
  // show the image as large as the window allows (small images scaled up, large ones down)
  const canvas = $("image");
  if (!state || !state.image) return;
  const room = [$("stage").parentElement.clientWidth, window.innerHeight - $("stage").getBoundingClientRect().top - 60];
  const scale = Math.max(0.05, Math.min(room[0] / canvas.width, room[1] / canvas.height, 4));
  $("stage").style.width = `${Math.floor(canvas.width * scale)}px`;
  $("stage").style.height = `${Math.floor(canvas.height * scale)}px`;
}
window.addEventListener("resize", fitStage);

// ---- state -> page ---------------------------------------------------------------------------
let shownImage = null;

function render(next) {
  const imageChanged = next.image && (!state || !state.image || shownImage !== imageKey(next));
  state = next;
  const hasImage = Boolean(state.image);
  $("note").textContent = hasImage && state.image.note ? state.image.note : "";
  $("note").hidden = !(hasImage && state.image.note);
  $("undo").disabled = !state.can_undo;
  $("reset").disabled = !state.can_undo;
  $("new-object").disabled = !hasImage;
  renderObjects();
  renderDownloads();
  updateHint();
  document.body.dataset.version = String(state.version);
  if (imageChanged) {
    shownImage = imageKey(state);
    loadImage(state.version);
  } else {
    drawMarks();
    refreshOverlay(false);
  }
}

function imageKey(s) {
  return s.image ? s.image.serial : null;  // every upload is a new image, even of the same file
}

function renderObjects() {
  const list = $("objects");
  list.innerHTML = "";
  for (const obj of state.objects) {
    const item = document.createElement("li");
    item.dataset.object = obj.id;
    item.className = obj.id === state.current ? "current" : "";
    item.innerHTML = `<span class="swatch" style="background:${obj.color}"></span>
      object ${obj.id} <small>(${obj.prompts.length} prompt${obj.prompts.length === 1 ? "" : "s"}, ${obj.area} px)</small>`;
    item.addEventListener("click", () => act("/api/select", jsonBody({ object: obj.id })));
    list.appendChild(item);
  }
}

function renderDownloads() {
  const annotated = state.objects.some((obj) => obj.prompts.length > 0);
  const current = state.objects.find((obj) => obj.id === state.current);
  const links = {
    "download-mask": current && current.prompts.length ? `/api/mask.png?object=${current.id}&v=${state.version}` : null,
    "download-labels": annotated ? `/api/labels.png?v=${state.version}` : null,
    "download-rle": annotated ? `/api/rle.json?v=${state.version}` : null,
  };
  for (const [id, href] of Object.entries(links)) {
    if (href) $(id).setAttribute("href", href);
    else $(id).removeAttribute("href");
    $(id).classList.toggle("disabled", !href);
  }
}

function refreshOverlay(force) {
  if (!state || !state.image) return;
  const version = state.version;
  if (!force && version === overlayWanted) return;
  overlayWanted = version;
  const overlay = new Image();
  overlay.onload = () => {
    if (version !== overlayWanted) return;  // a newer state is on its way
    const context = $("overlay").getContext("2d");
    context.clearRect(0, 0, $("overlay").width, $("overlay").height);
    context.drawImage(overlay, 0, 0);
    document.body.dataset.overlayVersion = String(version);
  };
  overlay.src = `/api/overlay.png?v=${version}`;
}

function drawMarks() {
  const canvas = $("marks");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!state || !state.image) return;
  const radius = Math.max(5, Math.round(Math.max(canvas.width, canvas.height) / 120));
  for (const obj of state.objects) {
    for (const prompt of obj.prompts) drawPrompt(context, prompt, obj.color, radius);
  }
  if (drag) drawPrompt(context, dragPrompt(), "#ffffff", radius);
}

function drawPrompt(context, prompt, color, radius) {
  const fill = prompt.is_positive ? "#2ecc40" : "#ff4136";
  context.lineWidth = Math.max(1.5, radius / 3);
  context.strokeStyle = color;
  if (prompt.kind === "click") {
    context.beginPath();
    context.arc(prompt.x + 0.5, prompt.y + 0.5, radius, 0, 2 * Math.PI);
    context.fillStyle = fill;
    context.fill();
    context.stroke();
  } else if (prompt.kind === "scribble") {
    context.strokeStyle = fill;
    context.beginPath();
    prompt.points.forEach(([y, x], i) => (i ? context.lineTo(x + 0.5, y + 0.5) : context.moveTo(x + 0.5, y + 0.5)));
    context.stroke();
  } else if (prompt.kind === "box") {
    context.strokeStyle = fill;
    context.strokeRect(prompt.x0, prompt.y0, prompt.x1 - prompt.x0 + 1, prompt.y1 - prompt.y0 + 1);
  }
}

// ---- pointer -> prompts ------------------------------------------------------------------------
function imagePoint(event) {
  const canvas = $("marks");
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) * canvas.width) / rect.width);
  const y = Math.floor(((event.clientY - rect.top) * canvas.height) / rect.height);
  return [Math.min(Math.max(y, 0), canvas.height - 1), Math.min(Math.max(x, 0), canvas.width - 1)];
}

function isPositive(event) {
  const leftIsPositive = document.querySelector('input[name="polarity"]:checked').value === "positive";
  return (event.button === 0) === leftIsPositive;
}

function dragPrompt() {
  const [start, end] = [drag.points[0], drag.points[drag.points.length - 1]];
  if (drag.kind === "scribble") return { kind: "scribble", points: drag.points, is_positive: drag.positive };
  if (drag.kind === "box") {
    return {
      kind: "box",
      y0: Math.min(start[0], end[0]), x0: Math.min(start[1], end[1]),
      y1: Math.max(start[0], end[0]), x1: Math.max(start[1], end[1]),
      is_positive: true,
    };
  }
  return { kind: "click", y: start[0], x: start[1], is_positive: drag.positive };
}

$("marks").addEventListener("contextmenu", (event) => event.preventDefault());
$("marks").addEventListener("pointerdown", (event) => {
  if (!state || !state.image || (event.button !== 0 && event.button !== 2)) return;
  $("marks").setPointerCapture(event.pointerId);
  drag = { kind: currentKind(), positive: isPositive(event), points: [imagePoint(event)] };
});
$("marks").addEventListener("pointermove", (event) => {
  if (!drag || drag.kind === "click") return;
  const point = imagePoint(event);
  const last = drag.points[drag.points.length - 1];
  if (point[0] === last[0] && point[1] === last[1]) return;
  if (drag.kind === "box") drag.points = [drag.points[0], point];
  else drag.points.push(point);
  drawMarks();
});
$("marks").addEventListener("pointerup", (event) => {
  if (!drag) return;
  if (drag.kind === "box" && drag.points.length < 2) {
    drag = null;
    showError("drag to draw a box around the object");
    drawMarks();
    return;
  }
  const prompt = { ...dragPrompt(), object: state.current };
  drag = null;
  drawMarks();
  queue = queue.then(() => act("/api/prompt", jsonBody(prompt)));
});

function jsonBody(payload) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) };
}

// ---- buttons -----------------------------------------------------------------------------------
$("undo").addEventListener("click", () => (queue = queue.then(() => act("/api/undo", { method: "POST" }))));
$("reset").addEventListener("click", () => (queue = queue.then(() => act("/api/reset", { method: "POST" }))));
$("new-object").addEventListener("click", () => act("/api/objects", { method: "POST" }));
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z" && !$("undo").disabled) {
    event.preventDefault();
    $("undo").click();
  }
});

pollStatus();
