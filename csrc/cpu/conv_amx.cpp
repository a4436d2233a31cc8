// conv_amx.cpp: the bfloat16 convolution on AMX tiles (conv_amx.h): the mode, the emulated tile kernel, the
// packing and the loops around the tile kernel. Compiled for the baseline ISA; the AMX instructions live in
// conv_amx_tiles.cpp.
#include "cpu/conv_amx.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/conv.h"
#include "cpu/half_convert.h"
#include "cpu/isa.h"
#include "cpu/workspace.h"

#define FC_AMX_NS amx_base
#include "cpu/conv_amx_pack.h"

namespace fastconv::cpu {

namespace {

// Zeroed pairs after each padded plane: the last wide columns of a tile read up to FW + 31 pairs past
// the plane's end (conv_amx.h), so filters up to kMaxF wide stay inside the buffer.
constexpr index_t kMaxF = 32, kSlack = 64;

bool cpu_has(const char* name) {
  for (const char* f : cpu_features())
    if (std::string(f) == name) return true;
  return false;
}

// avx512_bf16 is not a default: on Intel Xeon (Emerald Rapids, the one CPU with AVX512_BF16 it was measured
// on) vdpbf16ps does 32 products a cycle, as two float32 FMAs do, and with the tile program's padding (a tap
// pair for 3 taps, the wide pixels) the convolution ran slower than the staged float path (DeepConvNet's
// 16x28x28 layer: 7.7 vs 4.3 ms forward, one-off A/B in one process). AMD Zen 4, whose float32 FMAs are half
// as wide as its dot products, may gain from it; measure before making it a default there.
AmxMode mode_at_import() {
  const AmxMode best = amx_available() ? AmxMode::amx : AmxMode::off;
  if (const char* env = std::getenv("FASTCONV_AMX")) {
    const std::string s(env);
    if (s == "off" || s == "0") return AmxMode::off;
    if (s == "emulated") return AmxMode::emulated;
    if (s == "avx512_bf16" && avx512_bf16_available()) return AmxMode::avx512_bf16;
  }
  return best;
}

std::atomic<long long> g_calls{0};

std::atomic<int>& mode_cell() {
  static std::atomic<int> cell{static_cast<int>(mode_at_import())};
  return cell;
}

// ------------------------------------------------------------------------------------------------------
// the tile kernel run by scalar code: the same operands and layouts as amx_block_tiles

inline float bf16_value(std::uint16_t v) {
  // denormal inputs count as zero, as TDPBF16PS takes them
  if ((v & 0x7f80u) == 0) v &= 0x8000u;
  const std::uint32_t u = static_cast<std::uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void amx_block_emulated(int mt, int nt, index_t steps, const char* a, const index_t* aoff, index_t lda,
                        const char* b, const index_t* boff, index_t ldb, float* c, index_t ldc, bool accumulate) {
  for (index_t i = 0; i < mt * 16; ++i)
    for (index_t j = 0; j < nt * 16; ++j) {
      float acc = accumulate ? c[i * ldc + j] : 0.0f;
      for (index_t s = 0; s < steps; ++s) {
        const auto* ar = reinterpret_cast<const std::uint16_t*>(a + aoff[s] + i * lda);
        const char* bt = b + boff[s] + (j / 16) * 64 + (j % 16) * 4;
        for (index_t q = 0; q < 16; ++q) {
          const auto* bp = reinterpret_cast<const std::uint16_t*>(bt + q * ldb);
          acc += bf16_value(ar[2 * q]) * bf16_value(bp[0]);
          acc += bf16_value(ar[2 * q + 1]) * bf16_value(bp[1]);
        }
      }
      c[i * ldc + j] = acc;
    }
}

// ------------------------------------------------------------------------------------------------------
// forward (and the input gradient as a forward)

// A convolution with stride 1 and no dilation of N images of Ci channels (H x W, padding pt/pb/pl/pr) by
// filters packed as pack_filters writes them (float16: pack_filters_split), into out (N, FO, OH, OW):
// + bias[f] (float, or none), ReLU'd. S: bf16, or f16 on the split operands (conv_amx.h: split_f16).
template <typename S>
struct Forward {
  const S* x;
  index_t N, Ci, H, W, pt, pb, pl, pr, FH, FW;
  const std::uint16_t* wp;  // FOpad rows of steps * 32 bfloat16 (float16: the hi steps, then the lo ones)
  index_t FO;
  const float* bias;
  bool relu;
  S* out;
  index_t OH, OW;
};

index_t kw_pairs(index_t FW) { return (FW + 1) / 2; }

// wp[f][s*32 + 2j + e] = w(f, cb*16 + j, kh, 2*kwp + e) (zero past FW, for channels past Ci and for f >= FO),
// s = (kh*KWP + kwp)*CB + cb, CB = ceil(Ci / 16).
template <typename Get>
std::vector<std::uint16_t> pack_filters(index_t FO, index_t Ci, index_t FH, index_t FW, Get&& get) {
  const index_t KWP = kw_pairs(FW), CB = (Ci + 15) / 16, steps = FH * KWP * CB, FOpad = round_up(FO, 16);
  std::vector<std::uint16_t> wp(static_cast<std::size_t>(FOpad * steps * 32), 0);
  for (index_t f = 0; f < FO; ++f)
    for (index_t kh = 0; kh < FH; ++kh)
      for (index_t kwp = 0; kwp < KWP; ++kwp)
        for (index_t cb = 0; cb < CB; ++cb) {
          std::uint16_t* d = wp.data() + f * steps * 32 + ((kh * KWP + kwp) * CB + cb) * 32;
          for (index_t j = 0; j < 16; ++j)
            for (index_t e = 0; e < 2; ++e) {
              const index_t kw = 2 * kwp + e, c = cb * 16 + j;
              d[2 * j + e] = kw < FW && c < Ci ? get(f, c, kh, kw) : std::uint16_t(0);
            }
        }
  return wp;
}

template <typename S>
void run_forward(const Forward<S>& p, int nthreads) {
  constexpr bool split = std::is_same_v<S, f16>;
  constexpr index_t parts = split ? 2 : 1;  // operand halves (float16: hi and lo)
  const AmxRunner tr = amx_runner();
  const index_t R = p.W + p.pl + p.pr, Hp = p.H + p.pt + p.pb;
  const index_t plane = round_up(Hp * R + kSlack, 16);
  const index_t KWP = kw_pairs(p.FW), CB = (p.Ci + 15) / 16, steps = p.FH * KWP * CB;
  const index_t lda = parts * steps * 64, FB = round_up(p.FO, 16) / 16;
  const index_t Pw = p.OH * R, npb = (Pw + 15) / 16, ldc = round_up(npb, 2) * 16;
  const index_t half = CB * 16 * plane;  // pairs of one image's planes (of one half, for float16)
  // the tile steps: per bfloat16 step s, float16 takes four, (hi, hi), (lo, hi), (hi, lo), (lo, lo) of
  // (filters, input)
  const index_t ksteps = split ? 4 * steps : steps;
  std::vector<index_t> aoff(static_cast<std::size_t>(ksteps)), boff(static_cast<std::size_t>(ksteps));
  for (index_t kh = 0; kh < p.FH; ++kh)
    for (index_t kwp = 0; kwp < KWP; ++kwp)
      for (index_t cb = 0; cb < CB; ++cb) {
        const index_t s = (kh * KWP + kwp) * CB + cb, a = s * 64, b = (cb * 16 * plane + kh * R + 2 * kwp) * 4;
        if (!split) {
          aoff[s] = a;
          boff[s] = b;
          continue;
        }
        const index_t alo = a + steps * 64, blo = b + half * 4;
        const index_t as[4] = {a, alo, a, alo}, bs[4] = {b, b, blo, blo};
        for (int e = 0; e < 4; ++e) {
          aoff[4 * s + e] = as[e];
          boff[4 * s + e] = bs[e];
        }
      }
  const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, p.N)));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    AmxTileScope scope(tr.tiles);
    // channels past Ci (to a multiple of 16) stay zero: pair_planes writes the first Ci
    Scratch<std::uint32_t> pairs(static_cast<std::size_t>(parts * half), true);
    Scratch<std::uint16_t> tmp(static_cast<std::size_t>((2 * parts - 1) * (plane + 1)));
    Scratch<float> cbuf(static_cast<std::size_t>(32 * ldc));  // two filter blocks x every wide pixel
#pragma omp for schedule(static)
    for (index_t n = 0; n < p.N; ++n) {
      const S* xn = p.x + n * p.Ci * p.H * p.W;
      if constexpr (split)
        tr.pack.pair_planes_f16(xn, p.Ci, p.H, p.W, p.pt, p.pl, R, plane, tmp.data(), pairs.data(),
                                pairs.data() + half);
      else
        tr.pack.pair_planes(xn, p.Ci, p.H, p.W, p.pt, p.pl, R, plane, tmp.data(), pairs.data());
      S* on = p.out + n * p.FO * p.OH * p.OW;
      for (index_t fb = 0; fb < FB; fb += 2) {
        const int mt = static_cast<int>(std::min<index_t>(2, FB - fb));
        for (index_t pb = 0; pb < npb; pb += 2)
          tr.fn(mt, static_cast<int>(std::min<index_t>(2, npb - pb)), ksteps,
                reinterpret_cast<const char*>(p.wp + fb * 16 * parts * steps * 32), aoff.data(), lda,
                reinterpret_cast<const char*>(pairs.data() + pb * 16), boff.data(), plane * 4,
                cbuf.data() + pb * 16, ldc, false);
        // the valid pixels, output row by output row: + bias, ReLU, one rounding
        const index_t f0 = fb * 16, rows = std::min<index_t>(mt * 16, p.FO - f0);
        for (index_t oh = 0; oh < p.OH; ++oh) {
          const float* c = cbuf.data() + oh * R;
          const float* bias = p.bias ? p.bias + f0 : nullptr;
          S* o = on + f0 * p.OH * p.OW + oh * p.OW;
          if constexpr (split)
            tr.pack.store_rows_f16(c, ldc, rows, p.OW, bias, p.relu, o, p.OH * p.OW);
          else
            tr.pack.store_rows(c, ldc, rows, p.OW, bias, p.relu, o, p.OH * p.OW);
        }
      }
    }
  }
}

// pack_filters of float16 filters (get: their bits) for the split operands: per filter row, the hi halves'
// steps * 32 values, then the lo halves'.
template <typename Get>
std::vector<std::uint16_t> pack_filters_split(index_t FO, index_t Ci, index_t FH, index_t FW, Get&& get) {
  const auto part = [&](bool lo) {
    return pack_filters(FO, Ci, FH, FW, [&](index_t f, index_t c, index_t kh, index_t kw) {
      std::uint16_t h, l;
      split_f16(get(f, c, kh, kw), h, l);
      return lo ? l : h;
    });
  };
  const std::vector<std::uint16_t> hi = part(false), lo = part(true);
  const index_t row = static_cast<index_t>(hi.size()) / round_up(FO, 16);  // steps * 32
  std::vector<std::uint16_t> wp(2 * hi.size());
  for (index_t f = 0; f < round_up(FO, 16); ++f) {
    std::copy(hi.begin() + f * row, hi.begin() + (f + 1) * row, wp.begin() + 2 * f * row);
    std::copy(lo.begin() + f * row, lo.begin() + (f + 1) * row, wp.begin() + (2 * f + 1) * row);
  }
  return wp;
}

// The filter packing of type S: pack_filters, or pack_filters_split for float16.
template <typename S, typename Get>
std::vector<std::uint16_t> pack_filters_of(index_t FO, index_t Ci, index_t FH, index_t FW, Get&& get) {
  if constexpr (std::is_same_v<S, f16>)
    return pack_filters_split(FO, Ci, FH, FW, get);
  else
    return pack_filters(FO, Ci, FH, FW, get);
}

// The forward on the tiles, once the caller has checked the geometry and the values.
template <typename S>
void forward_tiles(const S* x, const S* w, const S* b, S* out, const ConvGeom& g, index_t FN, int nthreads,
                   bool relu) {
  const index_t C = g.C, FH = g.FH, FW = g.FW;
  const auto get = [&](index_t f, index_t c, index_t kh, index_t kw) {
    return w[((f * C + c) * FH + kh) * FW + kw].bits;
  };
  const std::vector<std::uint16_t> wp = pack_filters_of<S>(FN, C, FH, FW, get);
  // (the bias is added in float32 after the tiles, as on the staged path: any value of it is fine)
  std::vector<float> bias(b ? static_cast<std::size_t>(FN) : 0);
  if (b) widen(b, bias.data(), FN);
  run_forward(Forward<S>{x, g.N, C, g.H, g.W, g.pt, g.pb, g.pl, g.pr, FH, FW, wp.data(), FN,
                         b ? bias.data() : nullptr, relu, out, g.OH, g.OW},
              nthreads);
}

// The input gradient on the tiles, once the caller has checked the geometry (pads below the filter) and the
// values: dout (FN channels, OH x OW) convolved with w flipped and transposed, padded by F - 1 - pad.
template <typename S>
void input_grad_tiles(const S* w, const S* dout, S* dx, const ConvGeom& g, index_t FN, int nthreads) {
  const index_t C = g.C, FH = g.FH, FW = g.FW;
  const auto flipped = [&](index_t c, index_t f, index_t kh, index_t kw) {
    return w[((f * C + c) * FH + (FH - 1 - kh)) * FW + (FW - 1 - kw)].bits;
  };
  const std::vector<std::uint16_t> wp = pack_filters_of<S>(C, FN, FH, FW, flipped);
  run_forward(Forward<S>{dout, g.N, FN, g.OH, g.OW, FH - 1 - g.pt, FH - 1 - g.pb, FW - 1 - g.pl, FW - 1 - g.pr, FH,
                         FW, wp.data(), C, nullptr, false, dx, g.H, g.W},
              nthreads);
}

// The input gradient's forward pads by F - 1 - pad: a pad of F or more is left to the staged path.
bool pads_below_filter(const ConvGeom& g) { return g.pt < g.FH && g.pb < g.FH && g.pl < g.FW && g.pr < g.FW; }

bool geometry_ok(const ConvGeom& g) {
  if (!amx_active()) return false;
  // one channel: 15 of 16 tile rows would be zero planes, and the loads of those made the tiles slower than
  // the staged path (DeepConvNet's first layer, forward at batch 100: 1.98 vs 1.81 ms; 3 channels already
  // gain, 1.72 vs 2.34 ms; one-off A/B in one process, Intel Xeon)
  return g.C >= 2 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.FH <= kMaxF && g.FW <= kMaxF &&
         g.N > 0 && g.OH > 0 && g.OW > 0;
}

}  // namespace

bool conv_amx_takes(const ConvGeom& g) { return geometry_ok(g); }

bool amx_active() {
  const AmxMode m = amx_mode();
  return m != AmxMode::off && (m == AmxMode::emulated || active_isa() == Isa::avx512);
}

AmxRunner amx_runner() {
  switch (amx_mode()) {
    case AmxMode::amx: return {amx_block_tiles, amx_pack_avx512(), true};
    case AmxMode::avx512_bf16: return {amx_block_dpbf16, amx_pack_avx512(), false};
    default: return {amx_block_emulated, amx_base::pack_fns(), false};
  }
}

void amx_count_call() { g_calls.fetch_add(1, std::memory_order_relaxed); }

AmxTileScope::AmxTileScope(bool tiles) : tiles_(tiles) {
  if (tiles_) amx_tiles_begin();
}
AmxTileScope::~AmxTileScope() {
  if (tiles_) amx_tiles_end();
}

bool amx_available() {
  static const bool ok = amx_kernels_built() && cpu_has("amx_bf16") && amx_request_permission();
  return ok;
}

bool avx512_bf16_available() {
  static const bool ok = [] {
    bool avx512 = false;
    for (const char* isa : supported_isas()) avx512 |= std::string(isa) == "avx512";
    return avx512 && amx_kernels_built() && cpu_has("avx512_bf16");
  }();
  return ok;
}

long long amx_calls() { return g_calls.load(std::memory_order_relaxed); }

AmxMode amx_mode() { return static_cast<AmxMode>(mode_cell().load(std::memory_order_relaxed)); }

const char* amx_mode_name() {
  switch (amx_mode()) {
    case AmxMode::amx: return "amx";
    case AmxMode::avx512_bf16: return "avx512_bf16";
    case AmxMode::emulated: return "emulated";
    default: return "off";
  }
}

void set_amx_mode(const std::string& name) {
  AmxMode m;
  if (name == "off") m = AmxMode::off;
  else if (name == "emulated") m = AmxMode::emulated;
  else if (name == "amx") {
    if (!amx_available())
      throw std::invalid_argument("amx: 'amx' needs a CPU with AMX-BF16 and the OS's permission; this one lacks it");
    m = AmxMode::amx;
  } else if (name == "avx512_bf16") {
    if (!avx512_bf16_available())
      throw std::invalid_argument("amx: 'avx512_bf16' needs a CPU with AVX512_BF16; this one lacks it");
    m = AmxMode::avx512_bf16;
  } else {
    throw std::invalid_argument("amx: expected 'off', 'amx', 'avx512_bf16' or 'emulated', got '" + name + "'");
  }
  mode_cell().store(static_cast<int>(m), std::memory_order_relaxed);
}

bool conv_forward_amx(const bf16* x, const bf16* w, const bf16* b, bf16* out, const ConvGeom& g, index_t FN,
                      int nthreads, bool relu) {
  if (!geometry_ok(g) || FN <= 0) return false;
  const AmxPack pk = amx_runner().pack;
  if (!amx_exponents_ok(pk.exponent_scan(x, g.N * g.C * g.H * g.W), pk.exponent_scan(w, FN * g.C * g.FH * g.FW)))
    return false;
  forward_tiles(x, w, b, out, g, FN, nthreads, relu);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool conv_forward_amx(const f16* x, const f16* w, const f16* b, f16* out, const ConvGeom& g, index_t FN,
                      int nthreads, bool relu) {
  if (!geometry_ok(g) || FN <= 0 || !f16_tiles_gain(g.C, FN)) return false;
  const AmxPack pk = amx_runner().pack;
  if (!pk.f16_finite(x, g.N * g.C * g.H * g.W) || !pk.f16_finite(w, FN * g.C * g.FH * g.FW)) return false;
  forward_tiles(x, w, b, out, g, FN, nthreads, relu);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool conv_backward_amx(const bf16* x, const bf16* w, const bf16* dout, bf16* dx, bf16* dw, bf16* db,
                       const ConvGeom& g, index_t FN, int nthreads) {
  if (!geometry_ok(g) || FN <= 0) return false;
  const index_t C = g.C, FH = g.FH, FW = g.FW, H = g.H, W = g.W, OH = g.OH, OW = g.OW, N = g.N;
  // with or without dx (need_dx=False must give the same dW and db bits)
  if (!pads_below_filter(g)) return false;
  const AmxRunner tr = amx_runner();
  const index_t wsize = FN * C * FH * FW;
  // dW multiplies x by dout, dx dout by w (both checked with or without dx: need_dx=False keeps dW's bits)
  const int ex = tr.pack.exponent_scan(x, N * C * H * W), ew = tr.pack.exponent_scan(w, wsize),
            ed = tr.pack.exponent_scan(dout, N * FN * OH * OW);
  if (!amx_exponents_ok(ex, ed) || !amx_exponents_ok(ed, ew)) return false;

  if (dx) input_grad_tiles(w, dout, dx, g, FN, nthreads);

  // dW and db: slots of consecutive images (conv.h), each summed in order into its own float partials
  // dWt[tap][c][f] and db[f]; the slots are then added in order and rounded once. Per tap, C (channels x
  // filters) = A (the padded input planes, K = wide pixels shifted by the tap) x B (dout's wide pixel pairs).
  const index_t R = W + g.pl + g.pr, Hp = H + g.pt + g.pb;
  const index_t plane = round_up(Hp * R + kSlack, 32);
  const index_t Ppad = round_up(OH * R, 32), qsteps = Ppad / 32;
  // channels and filters padded to multiples of 16 with zeros (xpad's extra planes, dout's extra rows)
  const index_t Cp = round_up(C, 16), FNp = round_up(FN, 16);
  const index_t taps = FH * FW, FB = FNp / 16, CBk = Cp / 16;
  const index_t slots = std::min<index_t>(N, CONV_GRAD_SLOTS), per = (N + slots - 1) / slots;  // (at most)
  const index_t x_img = Cp * plane, d_img = Ppad / 2 * FNp;  // per image: values of xpad, pairs of dout
  // images per group: their packed copies within ~1 MiB (the bits do not depend on it)
  const index_t group = std::clamp<index_t>((1 << 20) / std::max<index_t>(x_img * 2 + d_img * 4, 1), 1, per);
  const index_t ps = taps * Cp * FNp + FNp;  // one slot's partials: dWt[tap][Cp][FNp], db[FNp]
  std::vector<float> part(static_cast<std::size_t>(slots * ps), 0.0f);
  const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, slots)));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    AmxTileScope scope(tr.tiles);
    Scratch<std::uint16_t> xpad(static_cast<std::size_t>(group * x_img), true);  // planes past C stay zero
    Scratch<std::uint32_t> dpairs(static_cast<std::size_t>(group * d_img));
    Scratch<std::uint16_t> tmp(static_cast<std::size_t>(16 * Ppad));
    std::vector<index_t> aoff(static_cast<std::size_t>(group * qsteps)), boff(aoff.size());
#pragma omp for schedule(static)
    for (index_t s = 0; s < slots; ++s) {
      float* acc = part.data() + s * ps;
      float* dbs = acc + taps * Cp * FNp;
      const index_t n0 = N * s / slots, n1 = N * (s + 1) / slots;  // even shares (conv.h)
      for (index_t g0 = n0; g0 < n1; g0 += group) {
        const index_t cnt = std::min(group, n1 - g0);
        for (index_t k = 0; k < cnt; ++k) {
          const index_t n = g0 + k;
          tr.pack.pad_planes(x + n * C * H * W, C, H, W, g.pt, g.pl, R, plane, xpad.data() + k * x_img);
          tr.pack.dout_pairs(dout + n * FN * OH * OW, FN, FNp, OH, OW, R, Ppad, tmp.data(), dpairs.data() + k * d_img,
                             dbs);
          for (index_t q = 0; q < qsteps; ++q) {
            aoff[k * qsteps + q] = (k * x_img + q * 32) * 2;
            boff[k * qsteps + q] = (k * d_img + q * 16 * FNp) * 4;
          }
        }
        const index_t steps = cnt * qsteps;
        for (index_t kh = 0; kh < FH; ++kh)
          for (index_t kw = 0; kw < FW; ++kw) {
            const index_t tap = kh * FW + kw, toff = kh * R + kw;
            for (index_t cb = 0; cb < CBk; cb += 2) {
              const int mt = static_cast<int>(std::min<index_t>(2, CBk - cb));
              for (index_t fb = 0; fb < FB; fb += 2)
                tr.fn(mt, static_cast<int>(std::min<index_t>(2, FB - fb)), steps,
                      reinterpret_cast<const char*>(xpad.data() + cb * 16 * plane + toff), aoff.data(), plane * 2,
                      reinterpret_cast<const char*>(dpairs.data() + fb * 16), boff.data(), FNp * 4,
                      acc + (tap * Cp + cb * 16) * FNp + fb * 16, FNp, g0 > n0);
            }
          }
      }
    }
  }
  for (index_t s = 1; s < slots; ++s)
    for (index_t i = 0; i < ps; ++i) part[i] += part[s * ps + i];
  std::vector<float> wf(static_cast<std::size_t>(wsize));
  for (index_t f = 0; f < FN; ++f)
    for (index_t c = 0; c < C; ++c)
      for (index_t t = 0; t < taps; ++t) wf[(f * C + c) * taps + t] = part[(t * Cp + c) * FNp + f];
  narrow(wf.data(), dw, wsize);
  narrow(part.data() + taps * Cp * FNp, db, FN);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool conv_backward_data_amx(const f16* w, const f16* dout, f16* dx, const ConvGeom& g, index_t FN, int nthreads) {
  if (!geometry_ok(g) || FN <= 0 || !f16_tiles_gain(FN, g.C) || !pads_below_filter(g)) return false;
  const AmxPack pk = amx_runner().pack;
  if (!pk.f16_finite(dout, g.N * FN * g.OH * g.OW) || !pk.f16_finite(w, FN * g.C * g.FH * g.FW)) return false;
  input_grad_tiles(w, dout, dx, g, FN, nthreads);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace fastconv::cpu
