// app.js - the page around <csasn-classifier>: picks the model from ?model=ID (the engine from
// ?engine=) and exposes
// measurement hooks for the benchmark (tools/bench.cjs) and the browser tests.
import { benchHooks } from './widget.js';

const t0 = performance.now();
const clf = document.querySelector('csasn-classifier');
const want = new URLSearchParams(location.search).get('model');
if (clf && want && !clf.hasAttribute('model')) clf.model = want;
// ?engine=simd128|relaxed: which wasm engine the widget runs (tests and benchmarks compare them).
const engine = new URLSearchParams(location.search).get('engine');
if (clf && engine && !clf.hasAttribute('engine')) clf.setAttribute('engine', engine);

// window.csasnBench: coldStartMs = navigation start to the first displayed result (null
// until then); loadTiming = the worker's split of the model load; run(n) = engine ms of n
// classifications of the current image inside the worker; roundTrips(n) = page-measured
// ms of n classify requests (engine + messaging); lastResult = the last displayed result.
const hooks = clf ? benchHooks(clf) : null;
const bench = {
  scriptStartMs: t0,
  coldStartMs: null,
  firstResult: null,
  readyMs: null,
  lastResult: null,
  get loadTiming() { return hooks ? hooks.loadTiming : null; },
  run: (n = 30) => hooks.run(n),
  roundTrips: (n = 30) => hooks.roundTrips(n),
};
window.csasnBench = bench;
if (clf) {
  clf.addEventListener('csasn-ready', () => { if (bench.readyMs === null) bench.readyMs = performance.now(); });
  clf.addEventListener('csasn-result', (e) => {
    bench.lastResult = e.detail.result;
    if (bench.coldStartMs === null) {
      bench.coldStartMs = performance.now();
      bench.firstResult = e.detail.result;
    }
  });
}
