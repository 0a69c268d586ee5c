// Writes tests/vectors/js_number_strings.txt: doubles as 16 hex digits (their bits) and what
// JavaScript's String() writes for them (ECMAScript Number::toString: the shortest round-trip
// digits, ties to the even digit; exponent notation below 1e-6 and from 1e21). Deterministic:
//   node tests/vectors/make_js_number_strings.js > tests/vectors/js_number_strings.txt
"use strict";

const view = new DataView(new ArrayBuffer(8));
const fromBits = (b) => { view.setBigUint64(0, b); return view.getFloat64(0); };
const toBits = (v) => { view.setFloat64(0, v); return view.getBigUint64(0); };
const M64 = (1n << 64n) - 1n;

// splitmix64, as in tests/factor_text.rs.
let state = 0x5157330000000015n;
function next() {
  state = (state + 0x9E3779B97F4A7C15n) & M64;
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & M64;
  return z ^ (z >> 31n);
}
const below = (n) => next() % n;
const signed = (v) => (next() & 1n) ? -v : v;
const ulps = (v, steps) => fromBits((toBits(v) + BigInt(steps)) & M64);

const values = [0, -0, Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** -1022, 5e-324, -5e-324];
// Any finite double.
while (values.length < 1500) {
  const v = fromBits(next());
  if (Number.isFinite(v)) values.push(v);
}
// Ties and near-ties: n × 2^-k, n odd, 18 to 53 bits.
for (let i = 0; i < 2500; i++) {
  const width = 18n + below(36n);
  const n = (next() >> (64n - width)) | 1n | (1n << (width - 1n));
  const k = 1 + Number(below(60n));
  values.push(signed(Number(n) * 2 ** -k));
}
// Around the places where Python or JavaScript changes layout, and 2^53, 2^63.
for (const edge of [1e-9, 1e-7, 1e-6, 1e-5, 1e-4, 1e16, 1e21, 2 ** 53, 2 ** 63]) {
  for (let step = -60; step <= 60; step++) values.push(ulps(edge, step), -ulps(edge, step));
}
// Integers up to 2^53 and beyond, subnormals.
for (let i = 0; i < 500; i++) {
  values.push(signed(Number(below(1n << 53n))), signed(Number(next() >> 1n)));
  values.push(fromBits(1n + below((1n << 52n) - 1n)));
}

const lines = ["# bits String(v): made by tests/vectors/make_js_number_strings.js with Node " +
  process.version];
for (const v of values) lines.push(toBits(v).toString(16).padStart(16, "0") + " " + String(v));
process.stdout.write(lines.join("\n") + "\n");
