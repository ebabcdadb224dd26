/**
 * The blind A/B page of `selfreward review`. Pure. It knows each pair's prompt and nothing else:
 * the images come from `/pair/<n>/left.png` and `/pair/<n>/right.png`, and the server alone knows
 * which generator drew which side.
 */
import type { ReviewPair } from './reviewPairs.js';

/** JSON inside a <script> element: no `</script>` or `<!--` can end it early. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

export function reviewPageHtml(round: number, pairs: readonly ReviewPair[]): string {
  const prompts = pairs.map((p) => ({ text: p.text, className: p.className }));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Blind review: round ${round}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}.images{display:flex;gap:24px}.images figure{margin:0;text-align:center}
.images img{width:384px;height:384px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc;background:#fafafa}
button{font-size:16px;padding:8px 20px;margin-right:12px}.small{color:#555;font-size:12px}.prompt{font-size:18px}</style></head><body>
<h1>Blind review: round ${round}</h1>
<p class="small">Two images of the same prompt from the same starting noise, by two generators, in an order drawn for each pair. Pick the one that shows the prompt better, or "same".</p>
<div id="review">
<p id="progress" class="small"></p>
<p class="prompt">“<span id="prompt"></span>” <span class="small">(class <span id="class"></span>)</span></p>
<div class="images"><figure><img id="left-image" alt="left image"><figcaption>left</figcaption></figure><figure><img id="right-image" alt="right image"><figcaption>right</figcaption></figure></div>
<p><button id="left" type="button">left (← or A)</button><button id="same" type="button">same (↓ or S)</button><button id="right" type="button">right (→ or D)</button></p>
</div>
<div id="done" hidden><h2>Every pair has a vote</h2><p id="figures"></p><p class="small">Reload to go through the pairs again.</p></div>
<p id="status" role="status"></p>
<script>
const PROMPTS = ${scriptJson(prompts)};
const count = PROMPTS.length;
let at = Math.min(count, Math.max(0, Number.parseInt(location.hash.slice(1), 10) || 0));
let busy = false;
const $ = (id) => document.getElementById(id);
const percent = (x) => (100 * x).toFixed(1) + '%';

async function showFigures() {
  const response = await fetch('/summary');
  const figures = await response.json();
  $('figures').textContent = figures.votes === 0 ? 'No votes yet.' :
    figures.votes + ' votes so far; people prefer tuned in ' + percent(figures.winRate) +
    ' (95% interval ' + percent(figures.winRateInterval[0]) + ' – ' + percent(figures.winRateInterval[1]) + ').';
}

function show() {
  if (at >= count) {
    $('review').hidden = true;
    $('done').hidden = false;
    showFigures().catch((e) => { $('status').textContent = 'Could not load the figures: ' + e; });
    return;
  }
  $('progress').textContent = 'Pair ' + (at + 1) + ' of ' + count;
  $('prompt').textContent = PROMPTS[at].text;
  $('class').textContent = PROMPTS[at].className;
  $('left-image').src = '/pair/' + at + '/left.png';
  $('right-image').src = '/pair/' + at + '/right.png';
}

async function vote(choice) {
  if (busy || at >= count) return;
  busy = true;
  try {
    const response = await fetch('/vote', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pair: at, choice }) });
    const answer = await response.json();
    if (!response.ok) {
      $('status').textContent = 'Not recorded: ' + answer.error;
      return;
    }
    $('status').textContent = answer.votes + (answer.votes === 1 ? ' vote' : ' votes') + ' so far';
    at += 1;
    history.replaceState(null, '', '#' + at);
    show();
  } catch (e) {
    $('status').textContent = 'Not recorded: ' + e;
  } finally {
    busy = false;
  }
}

// The button lets go of the focus, so a later Space or Enter does not cast the same answer again.
for (const choice of ['left', 'same', 'right']) $(choice).addEventListener('click', (event) => { event.currentTarget.blur(); vote(choice); });
const KEYS = { ArrowLeft: 'left', a: 'left', A: 'left', ArrowDown: 'same', s: 'same', S: 'same', ArrowRight: 'right', d: 'right', D: 'right' };
document.addEventListener('keydown', (event) => {
  const choice = KEYS[event.key];
  if (choice === undefined || event.altKey || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  vote(choice);
});
show();
</script>
</body></html>
`;
}
