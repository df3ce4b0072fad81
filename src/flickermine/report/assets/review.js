(function(){
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const storeKey = "flickermine-decisions-" + data.run;
let decisions = {};
try { decisions = JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch (e) { decisions = {}; }
const gallery = document.getElementById("gallery");
const $ = (id) => document.getElementById(id);
const cards = new Map();
let shown = [], focus = -1;

function option(select, value) {
  const o = document.createElement("option"); o.value = value; o.textContent = value;
  select.appendChild(o);
}
data.videos.forEach((v) => option($("f-video"), v));
[...new Set(data.examples.map((e) => e.kind))].sort().forEach((r) => option($("f-reason"), r));

function decide(id, value) {
  if (value) decisions[id] = value; else delete decisions[id];
  try { localStorage.setItem(storeKey, JSON.stringify(decisions)); } catch (e) {}
  const card = cards.get(id);
  if (card) {
    card.classList.toggle("accepted", value === "accepted");
    card.classList.toggle("rejected", value === "rejected");
  }
}

function makeCard(e) {
  const card = document.createElement("div");
  card.className = "card " + e.verdict;
  card.dataset.id = e.id;
  const img = document.createElement("img");
  img.loading = "lazy"; img.decoding = "async"; img.src = e.thumb;
  img.alt = e.verdict + " " + e.video + " frame " + e.frame;
  img.addEventListener("click", () => openFull(e));
  const meta = document.createElement("div");
  meta.className = "meta";
  const score = e.score === null ? "" : " · score " + e.score.toFixed(2);
  meta.textContent = e.verdict.replace("_", " ") + score + " · " + e.video + " · frame " + e.frame;
  const reason = document.createElement("div");
  reason.className = "meta"; reason.textContent = e.reason;
  const yes = document.createElement("button"); yes.type = "button"; yes.textContent = "accept";
  yes.className = "accept"; yes.addEventListener("click", () => decide(e.id, "accepted"));
  const no = document.createElement("button"); no.type = "button"; no.textContent = "reject";
  no.className = "reject"; no.addEventListener("click", () => decide(e.id, "rejected"));
  card.append(img, meta, reason, yes, no);
  if (decisions[e.id]) card.classList.add(decisions[e.id]);
  cards.set(e.id, card);
  return card;
}

function render() {
  const video = $("f-video").value, verdict = $("f-verdict").value, reason = $("f-reason").value;
  const minScore = parseFloat($("f-score").value) || 0, decision = $("f-decision").value;
  shown = data.examples.filter((e) =>
    (!video || e.video === video) && (!verdict || e.verdict === verdict) &&
    (!reason || e.kind === reason) && (e.score === null || e.score >= minScore) &&
    (!decision || (decision === "none" ? !decisions[e.id] : decisions[e.id] === decision)));
  const sort = $("f-sort").value;
  if (sort === "score-desc") shown.sort((a, b) => (b.score ?? -1) - (a.score ?? -1));
  else if (sort === "score-asc") shown.sort((a, b) => (a.score ?? 2) - (b.score ?? 2));
  const frag = document.createDocumentFragment();
  shown.forEach((e) => frag.appendChild(cards.get(e.id) || makeCard(e)));
  gallery.replaceChildren(frag);
  $("shown").textContent = shown.length + " of " + data.examples.length + " shown";
  setFocus(shown.length ? 0 : -1);
}

function setFocus(i) {
  if (focus >= 0 && shown[focus]) cards.get(shown[focus].id).classList.remove("focus");
  focus = i;
  if (i >= 0 && shown[i]) {
    const c = cards.get(shown[i].id); c.classList.add("focus");
    c.scrollIntoView({block: "nearest"});
  }
}

function openFull(e) {
  $("viewer-img").src = e.full;
  $("viewer-caption").textContent = e.video + " · frame " + e.frame + " · " + e.reason;
  $("viewer").hidden = false;
}
$("viewer").addEventListener("click", () => { $("viewer").hidden = true; });

document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  if (!$("viewer").hidden) { if (ev.key === "Escape" || ev.key === "Enter") $("viewer").hidden = true; return; }
  const cur = shown[focus];
  if (ev.key === "ArrowRight" || ev.key === "j") setFocus(Math.min(shown.length - 1, focus + 1));
  else if (ev.key === "ArrowLeft" || ev.key === "k") setFocus(Math.max(0, focus - 1));
  else if (cur && ev.key === "a") { decide(cur.id, "accepted"); setFocus(Math.min(shown.length - 1, focus + 1)); }
  else if (cur && ev.key === "r") { decide(cur.id, "rejected"); setFocus(Math.min(shown.length - 1, focus + 1)); }
  else if (cur && ev.key === "u") decide(cur.id, null);
  else if (cur && ev.key === "Enter") openFull(cur);
  else return;
  ev.preventDefault();
});

["f-video", "f-verdict", "f-reason", "f-score", "f-decision", "f-sort"].forEach((id) =>
  $(id).addEventListener("change", render));

$("export").addEventListener("click", () => {
  const blob = new Blob([JSON.stringify({run: data.run, videos: data.videos, decisions: decisions}, null, 2)],
                        {type: "application/json"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = "decisions.json";
  document.body.appendChild(a); a.click(); a.remove();
});

render();
window.flickermineReady = performance.now();
})();
