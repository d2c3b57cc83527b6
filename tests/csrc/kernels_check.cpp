// Runs every kernel core of `plugins/sarathi_models/csrc/` (RMSNorm, silu, rotary, the residual add,
// argmax, decode and prefill attention, the quantized matmul, its dequantization and its GEMM) on fixed inputs, built alone for whatever
// ISA this file is compiled for, with no ATen: x86 levels natively, ARM64 (NEON) with a cross compiler
// under qemu-user. Prints the level, then one line per kernel: its name and an FNV-1a hash of its
// output bytes. `tests/models/test_kernel_cores_isas.py` requires the same hashes from every level (one
// numerics on every CPU). The attention outputs are also held to a float64 reference here, so hashes
// of wrong outputs can never agree by accident; exits 1 when one is off.

#include "argmax_core.h"
#include "decode_attention.h"
#include "dequant_core.h"
#include "prefill_core.h"
#include "quant_gemm_core.h"
#include "quant_core.h"
#include "row_kernels.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

namespace {

using kern::bf16;

// xorshift64*: the same numbers on every target (std's distributions are not specified bit for bit).
struct Random {
  uint64_t state;
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
  // A value over many orders of magnitude (2^-lo .. 2^hi), as hidden states with outlier channels:
  // sums taken in another order come out differently on such values.
  float heavy(int lo, int hi) {
    const uint64_t r = next();
    const int exponent = 127 - lo + static_cast<int>((r >> 8) % (lo + hi + 1));
    const uint32_t bits = ((r & 1) << 31) | (static_cast<uint32_t>(exponent) << 23) | ((r >> 16) & 0x7F0000);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;  // a bf16 value (7 mantissa bits)
  }
  float unit() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24); }
};

uint64_t fnv(const void* data, size_t bytes, uint64_t hash = 0xcbf29ce484222325ULL) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 0x100000001b3ULL;
  return hash;
}

template <typename T>
void report(const char* name, const std::vector<T>& out) {
  std::printf("%s %016llx\n", name, static_cast<unsigned long long>(fnv(out.data(), out.size() * sizeof(T))));
}

std::vector<bf16> bf16s(Random& random, size_t n, int lo, int hi) {
  std::vector<bf16> out(n);
  for (auto& v : out) v = bf16(random.heavy(lo, hi));
  return out;
}

// fp32 values with full mantissas over many orders of magnitude, either sign.
float full(Random& random, int lo, int hi) { return random.heavy(lo, hi) * (1.f + random.unit() / 2); }

// The vector operations the kernels are built from, on many random lanes, with fp32 results (the
// kernels' bf16 outputs hide most last-bit differences of their sums): on the avx512 level through
// the AVX-512 instructions themselves (vdpbf16ps, the exp, GCC's _mm512_reduce_add_ps, the decode
// kernel's transpose tree, vcvtneps2bf16), elsewhere through vec8.h's 8-lane replay of them.
void primitives(Random& random) {
  constexpr int kGroups = 4096;
  std::vector<float> dot(kGroups * 16), exps(kGroups * 16), sums(kGroups), rows16(kGroups);
  std::vector<bf16> rounded(kGroups * 16);
  for (int g = 0; g < kGroups; ++g) {
    float acc[16], x[16], v[16];
    uint32_t a[16], b[16];
    for (int l = 0; l < 16; ++l) {
      acc[l] = full(random, 6, 6);
      a[l] = (static_cast<uint32_t>(bf16(random.heavy(6, 6)).x) << 16) | bf16(random.heavy(6, 6)).x;
      b[l] = (static_cast<uint32_t>(bf16(random.heavy(6, 6)).x) << 16) | bf16(random.heavy(6, 6)).x;
      x[l] = -100.f * random.unit();
      v[l] = full(random, 10, 10);
    }
#if defined(SARATHI_AVX512)
    _mm512_storeu_ps(dot.data() + g * 16, _mm512_dpbf16_ps(_mm512_loadu_ps(acc), (__m512bh)_mm512_loadu_si512(a),
                                                           (__m512bh)_mm512_loadu_si512(b)));
    _mm512_storeu_ps(exps.data() + g * 16, kern::exp_nonpositive(_mm512_loadu_ps(x)));
    sums[g] = _mm512_reduce_add_ps(_mm512_loadu_ps(v));
    __m512 tree[16];
    for (int r = 0; r < 16; ++r) tree[r] = r == 0 ? _mm512_loadu_ps(v) : _mm512_setzero_ps();
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, kern::sum16(tree));
    rows16[g] = lanes[0];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(rounded.data() + g * 16), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v)));
#else
    namespace v8 = kern::v8;
    v8::store(dot.data() + g * 16, v8::dpbf16(v8::load(acc), v8::load_pairs(a), v8::load_pairs(b)));
    v8::store(dot.data() + g * 16 + 8, v8::dpbf16(v8::load(acc + 8), v8::load_pairs(a + 8), v8::load_pairs(b + 8)));
    v8::store(exps.data() + g * 16, v8::exp_nonpositive(v8::load(x)));
    v8::store(exps.data() + g * 16 + 8, v8::exp_nonpositive(v8::load(x + 8)));
    sums[g] = v8::reduce_add16(v8::load(v), v8::load(v + 8));
    rows16[g] = v8::sum16_row(v8::load(v), v8::load(v + 8));
    v8::store_bf16(rounded.data() + g * 16, v8::load(v));
    v8::store_bf16(rounded.data() + g * 16 + 8, v8::load(v + 8));
#endif
  }
  report("dpbf16", dot);
  report("exp_nonpositive", exps);
  report("reduce_add16", sums);
  report("sum16_row", rows16);
  report("round_bf16", rounded);
}

void rows(Random& random) {
  const int64_t t = 5, hidden = 581, inter = 203, dim = 64, heads = 3;
  const std::vector<bf16> x = bf16s(random, t * hidden, 8, 8), w = bf16s(random, hidden, 2, 2);
  std::vector<bf16> normed(t * hidden);
  kern::rms_norm_rows(x.data(), w.data(), 1e-5, hidden, normed.data(), 0, t);
  report("rms_norm_bf16", normed);
  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), normed_f(t * hidden);
  for (auto& v : xf) v *= 1.f + random.unit() / 3;  // full fp32 mantissas
  kern::rms_norm_rows(xf.data(), wf.data(), 1e-5, hidden, normed_f.data(), 0, t);
  report("rms_norm_fp32", normed_f);
  const std::vector<bf16> gate_up = bf16s(random, t * 2 * inter, 6, 4);
  std::vector<bf16> mid(t * inter);
  kern::silu_and_mul_rows(gate_up.data(), inter, mid.data(), 0, t);
  report("silu_and_mul_bf16", mid);
  std::vector<bf16> qk = bf16s(random, t * heads * dim, 3, 3), cos(t * dim), sin(t * dim);
  for (int64_t i = 0; i < t * dim; ++i) {
    const float angle = 6.f * random.unit() - 3.f;
    cos[i] = bf16(1.f - angle * angle / 2);  // any values: the kernel only multiplies and adds
    sin[i] = bf16(angle);
  }
  kern::rotary_rows(qk.data(), heads * dim, heads, dim, dim, cos.data(), sin.data(), 0, t);
  report("rotary_bf16", qk);
  std::vector<bf16> h = bf16s(random, t * hidden, 8, 8);
  const std::vector<bf16> b = bf16s(random, t * hidden, 8, 8);
  kern::add_rows(h.data(), b.data(), hidden, 0, t);
  report("add_rows_bf16", h);
}

void argmax(Random& random) {
  const int64_t n = 1003;
  std::vector<float> logits(4 * n);
  for (auto& v : logits) v = random.heavy(4, 4);
  logits[1 * n + 17] = logits[1 * n + 900] = 1e30f;  // a tie: the first wins
  logits[2 * n + 900] = std::numeric_limits<float>::quiet_NaN();  // a NaN wins
  logits[2 * n + 3] = 1e30f;
  for (int64_t i = 0; i < n; ++i) logits[3 * n + i] = -std::numeric_limits<float>::infinity();
  std::vector<int64_t> index(4);
  for (int r = 0; r < 4; ++r) index[r] = kern::argmax_row(logits.data() + r * n, n);
  report("argmax", index);
  if (index[1] != 17 || index[2] != 900 || index[3] != 0) {
    std::printf("argmax off: %lld %lld %lld\n", static_cast<long long>(index[1]), static_cast<long long>(index[2]),
                static_cast<long long>(index[3]));
    std::exit(1);
  }
}

// Attention of one query row [64] over keys and values [span][64] (rows given by `row`), in float64:
// softmax(q k / sqrt 64) v.
template <typename Row>
void reference(const bf16* q, int64_t span, Row row, double* out) {
  std::vector<double> score(span);
  double top = -1e300, total = 0;
  for (int64_t j = 0; j < span; ++j) {
    double dot = 0;
    for (int d = 0; d < 64; ++d) dot += static_cast<double>(q[d]) * static_cast<double>(row(j, false)[d]);
    score[j] = dot / 8;
    top = std::max(top, score[j]);
  }
  for (auto& s : score) total += s = std::exp(s - top);
  for (int d = 0; d < 64; ++d) {
    double acc = 0;
    for (int64_t j = 0; j < span; ++j) acc += score[j] * static_cast<double>(row(j, true)[d]);
    out[d] = acc / total;
  }
}

// Whether got [64] is within bf16 rounding (plus the probabilities' bf16 rounding) of want.
bool near(const bf16* got, const double* want) {
  double scale = 0, err = 0;
  for (int d = 0; d < 64; ++d) {
    scale = std::max(scale, std::fabs(want[d]));
    err = std::max(err, std::fabs(static_cast<double>(got[d]) - want[d]));
  }
  return err <= 2e-2 * scale + 1e-6;
}

void decode_attention(Random& random, int64_t heads_per_task, int64_t window, const char* name) {
  const int64_t decodes = 6, hq = 9, hkv = 3, bs = 16, blocks = 63;
  const int64_t lengths[decodes] = {1, 77, 203, 400, 700, 1000};
  const std::vector<bf16> k_cache = bf16s(random, decodes * blocks * bs * hkv * 64, 2, 2);
  const std::vector<bf16> v_cache = bf16s(random, decodes * blocks * bs * hkv * 64, 2, 2);
  const std::vector<bf16> q = bf16s(random, decodes * hq * 64, 2, 2);
  std::vector<int64_t> tables(decodes * blocks);
  for (int64_t i = 0; i < decodes * blocks; ++i) tables[i] = (i * 17 + 5) % (decodes * blocks);  // scattered
  std::vector<bf16> out(decodes * hq * 64);
  const kern::PagedDecodes<bf16> layer{q.data(), hq * 64, out.data(), hq * 64, k_cache.data(), v_cache.data(),
                                       bs, bs * hkv * 64, hkv * 64, 64, tables.data(), blocks, lengths, decodes,
                                       hq, hkv, 64, 0.125f, window, heads_per_task};
  kern::attend_tasks(layer, 0, layer.tasks());
  report(name, out);
  for (int64_t i = 0; i < decodes; ++i) {
    const int64_t first = window > 0 ? std::max<int64_t>(0, lengths[i] - window) : 0;
    for (int64_t head = 0; head < hq; ++head) {
      const int64_t h = head / (hq / hkv);
      auto row = [&](int64_t j, bool value) {
        const int64_t pos = first + j;
        return (value ? v_cache : k_cache).data() + tables[i * blocks + pos / bs] * bs * hkv * 64 + (pos % bs) * hkv * 64 + h * 64;
      };
      double want[64];
      reference(q.data() + (i * hq + head) * 64, lengths[i] - first, row, want);
      if (!near(out.data() + (i * hq + head) * 64, want)) {
        std::printf("%s: decode %lld head %lld is off the float64 reference\n", name, static_cast<long long>(i),
                    static_cast<long long>(head));
        std::exit(1);
      }
    }
  }
}

void prefill_attention(Random& random, int64_t t, int64_t length, const char* name) {
  const int64_t hq = 8, hkv = 2, bs = 16, blocks = (length + bs - 1) / bs;
  const std::vector<bf16> k_cache = bf16s(random, blocks * bs * hkv * 64, 2, 2);
  const std::vector<bf16> v_cache = bf16s(random, blocks * bs * hkv * 64, 2, 2);
  const std::vector<bf16> q = bf16s(random, t * hq * 64, 2, 2);
  std::vector<int64_t> table(blocks);
  for (int64_t i = 0; i < blocks; ++i) table[i] = blocks - 1 - i;
  std::vector<bf16> out(t * hq * 64);
  const auto* qp = reinterpret_cast<const uint16_t*>(q.data());
  const int64_t tiles = (t + kern::kTile - 1) / kern::kTile;
  for (int64_t task = 0; task < tiles * hkv; ++task)
    kern::attend_tile(qp, reinterpret_cast<const uint16_t*>(k_cache.data()), reinterpret_cast<const uint16_t*>(v_cache.data()),
                      table.data(), reinterpret_cast<uint16_t*>(out.data()), t, hq, hkv, bs, bs * hkv * 64, hkv * 64, 64,
                      length - t, 0.125f, task % hkv, task / hkv);
  report(name, out);
  for (int64_t i = 0; i < t; ++i)
    for (int64_t head = 0; head < hq; ++head) {
      const int64_t h = head / (hq / hkv);
      auto row = [&](int64_t j, bool value) {
        return (value ? v_cache : k_cache).data() + table[j / bs] * bs * hkv * 64 + (j % bs) * hkv * 64 + h * 64;
      };
      double want[64];
      reference(q.data() + (i * hq + head) * 64, length - t + i + 1, row, want);
      if (!near(out.data() + (i * hq + head) * 64, want)) {
        std::printf("%s: position %lld head %lld is off the float64 reference\n", name, static_cast<long long>(i),
                    static_cast<long long>(head));
        std::exit(1);
      }
    }
}

// Random codes and fp16 scales for `blocks` (tile, group) blocks of a weight; minimums negative.
template <int Format>
void random_weight(Random& random, int64_t blocks, std::vector<uint8_t>& codes, std::vector<uint16_t>& scales) {
  codes.resize(blocks * quant::kGroupBytes<Format>);
  for (auto& c : codes) c = static_cast<uint8_t>(random.next() >> 56);
  scales.resize(blocks * quant::kGroupScales<Format>);
  for (size_t i = 0; i < scales.size(); ++i)
    scales[i] = static_cast<uint16_t>(((i % 32 >= 16) << 15) | ((8 + random.next() % 6) << 10) | (random.next() % 1024));
}

template <int Format>
void quant_matmul(Random& random, const char* name) {
  const int64_t m = 11, k = 576, n = 40, groups = k / quant::kGroup, tiles = (n + quant::kTile - 1) / quant::kTile;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  random_weight<Format>(random, tiles * groups, codes, scales);
  const std::vector<bf16> x = bf16s(random, m * k, 6, 6);
  quant::QuantizedRows act{std::vector<int8_t>(m * k), std::vector<float>(m * groups), std::vector<float>(m * groups),
                           std::vector<int32_t>(m * groups), std::vector<int32_t>(m * groups)};
  quant::quantize_range(x.data(), k, act, 0, m);
  std::vector<float> out(m * n);
  quant::matmul_tiles<float, Format>(act, m, k, codes.data(), scales.data(), n, out.data(), 0, tiles);
  report(name, out);
}

// The tiled weight dequantized whole (transposed) and by rows (n = 40: a partial last tile), each value
// held to d * c + m computed here in double and rounded to bf16: exits 1 when one is off.
template <int Format>
void dequantize(Random& random, const char* name) {
  const int64_t k = 96, n = 40, groups = k / quant::kGroup, tiles = (n + quant::kTile - 1) / quant::kTile;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  random_weight<Format>(random, tiles * groups, codes, scales);
  std::vector<uint16_t> transposed(k * n), rows(n * k);
  quant::dequantize_transposed<Format>(codes.data(), scales.data(), k, n, transposed.data(), n, 0, tiles);
  for (int64_t row = 0; row < n; ++row) quant::dequantize_row<Format>(codes.data(), scales.data(), k, row, rows.data() + row * k);
  for (int64_t row = 0; row < n; ++row) {
    const int64_t t = row / quant::kTile, lane = row % quant::kTile;
    for (int64_t input = 0; input < k; ++input) {
      const int64_t g = input / quant::kGroup, j = input % quant::kGroup;
      const uint16_t* gs = scales.data() + (t * groups + g) * quant::kGroupScales<Format>;
      const int64_t half = quant::kHalves<Format> ? 32 * (j / 16) : 0;
      const double value = static_cast<double>(quant::half_to_float(gs[half + lane])) *
                               quant::code_at<Format>(codes.data() + (t * groups + g) * quant::kGroupBytes<Format>, lane, j) +
                           quant::half_to_float(gs[half + 16 + lane]);
      const uint16_t want = kern::bf16_bits(static_cast<float>(value));  // the product is exact in fp32
      if (transposed[input * n + row] != want || rows[row * k + input] != want) {
        std::printf("%s: row %lld input %lld is off\n", name, static_cast<long long>(row), static_cast<long long>(input));
        std::exit(1);
      }
    }
  }
  report(name, transposed);
}

// quant_gemm's arithmetic written out (the dequantized bf16 weight, vdpbf16ps' two fp32 steps per
// input pair, odd input first, bf16 once at the end); the builds that have the kernel must equal it
// (exit 1), and every build reports the reference's hash, so the lines match across levels.
template <int Format>
void quant_gemm(Random& random, const char* name) {
  const int64_t m = 11, k = 96, n = 40, groups = k / quant::kGroup, tiles = (n + quant::kTile - 1) / quant::kTile;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  random_weight<Format>(random, tiles * groups, codes, scales);
  const std::vector<bf16> x = bf16s(random, m * k, 6, 6);
  std::vector<uint16_t> wt(k * n), want(m * n);
  quant::dequantize_transposed<Format>(codes.data(), scales.data(), k, n, wt.data(), n, 0, tiles);
  auto value = [](uint16_t bits) { return static_cast<float>(reinterpret_cast<const bf16*>(&bits)[0]); };
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      float acc = 0.f;
      for (int64_t p = 0; p < k / 2; ++p) {
        acc += static_cast<float>(x[r * k + 2 * p + 1]) * value(wt[(2 * p + 1) * n + c]);
        acc += static_cast<float>(x[r * k + 2 * p]) * value(wt[2 * p * n + c]);
      }
      want[r * n + c] = kern::bf16_bits(acc);
    }
#if defined(SARATHI_QUANT_GEMM)
  std::vector<uint16_t> got(m * n);
  quant::gemm_tile_pairs<Format>(reinterpret_cast<const uint16_t*>(x.data()), m, k, codes.data(), scales.data(), n,
                                 got.data(), 0, (tiles + 1) / 2);
  if (got != want) {
    std::printf("%s: the kernel differs from its arithmetic written out\n", name);
    std::exit(1);
  }
#endif
  report(name, want);
}

}  // namespace

int main() {
  std::printf("level %s\n", isa_level_name());
  Random random{2026};
  primitives(random);
  rows(random);
  argmax(random);
  decode_attention(random, 1, 0, "decode_attention_head_tasks");
  decode_attention(random, 3, 0, "decode_attention_row_tasks");
  decode_attention(random, 1, 40, "decode_attention_window");
  prefill_attention(random, 37, 50, "prefill_attention_37_of_50");
  prefill_attention(random, 17, 300, "prefill_attention_17_of_300");
  quant_matmul<quant::kFour>(random, "quant_matmul_4bit");
  quant_matmul<quant::kFive>(random, "quant_matmul_5bit");
  quant_matmul<quant::kEight>(random, "quant_matmul_8bit");
  quant_matmul<quant::kEightHalves>(random, "quant_matmul_8bit_half_group_scales");
  quant_matmul<quant::kSixHalves>(random, "quant_matmul_6bit_half_group_scales");
  dequantize<quant::kFour>(random, "dequantize_4bit");
  dequantize<quant::kFive>(random, "dequantize_5bit");
  dequantize<quant::kEight>(random, "dequantize_8bit");
  dequantize<quant::kEightHalves>(random, "dequantize_8bit_half_group_scales");
  dequantize<quant::kSixHalves>(random, "dequantize_6bit_half_group_scales");
  quant_gemm<quant::kFour>(random, "quant_gemm_4bit");
  quant_gemm<quant::kFive>(random, "quant_gemm_5bit");
  quant_gemm<quant::kEight>(random, "quant_gemm_8bit");
  quant_gemm<quant::kEightHalves>(random, "quant_gemm_8bit_half_group_scales");
  quant_gemm<quant::kSixHalves>(random, "quant_gemm_6bit_half_group_scales");
  return 0;
}
