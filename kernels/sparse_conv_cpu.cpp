// Mask-guided sparse convolution (SPAIR Eq. 2) for the CPU, straight from the mask.
//
//   out[p] = 0                                                  where mask[p] == 0
//   out[p] = mask[p] * (bias + sum_t W_t . x[p + d_t] * mask[p + d_t])   elsewhere
//
// which is restore_cli/ops/reference.py's masked_conv2d, on channels-last
// (B, H, W, C) float32 maps. It is the compiled CPU path of restore_cli/ops/native.py
// (built with the machine's C++ compiler on first use); PyTorch's gather -> GEMM ->
// scatter (restore_cli/ops/fast.py) stays the fallback and the training path.
//
// Why a kernel: in PyTorch the sparse conv must find the active pixels, build their
// neighbour table, write im2col rows, multiply, and scatter the result, each a pass
// over memory. Here one pass over the mask does it all: each image row's active
// pixels are taken a block at a time, every tap's weights (k*k small Cin x Cout
// matrices) are applied to the block's active neighbours two pixels at a time (the
// weights loaded once for both), and inactive neighbours cost nothing.
//
// Vectors are GCC/Clang vector extensions of 8 floats: one AVX register, or two
// narrower ones where the CPU has no AVX (the tests build it for plain x86-64 too).
// So Cout must be a multiple of 8, up to 64; the caller falls back to PyTorch
// otherwise (the function returns 1).

#include <cstring>

namespace {

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // unaligned access
inline v8 load(const float* p) { return *(const v8u*)p; }
inline void store(float* p, v8 v) { *(v8u*)p = v; }

struct Conv {
    const float* x;      // (B*H*W) input pixels, x_stride floats apart, Cin used
    long x_stride;
    const float* mask;   // (B*H*W)
    const float* w;      // (k*k, Cin, Cout): tap (ky, kx), then a Cin x Cout matrix
    const float* bias;   // (Cout) or null
    int batch, height, width, cin, cout, ksize;
    float* out;          // (B*H*W) output pixels, out_stride floats apart, Cout written
    long out_stride;
};

constexpr int BLOCK = 32;  // active pixels of an image row computed together

struct Neighbour {
    float* acc;       // the accumulator of the active pixel it feeds
    const float* x;   // its input channels
    float m;          // its mask value
};

// acc += m * (x . W) for two pixels, each weight vector loaded once for both.
template <int NV>
inline void madd2(const Neighbour& p, const Neighbour& q, const float* w, int cin) {
    v8 a[NV], b[NV];
    for (int j = 0; j < NV; ++j) { a[j] = load(p.acc + 8 * j); b[j] = load(q.acc + 8 * j); }
    for (int ci = 0; ci < cin; ++ci) {
        v8 xp = v8{} + p.x[ci] * p.m, xq = v8{} + q.x[ci] * q.m;
        const float* row = w + (long)ci * NV * 8;
        for (int j = 0; j < NV; ++j) {
            v8 wv = load(row + 8 * j);
            a[j] += xp * wv;
            b[j] += xq * wv;
        }
    }
    for (int j = 0; j < NV; ++j) { store(p.acc + 8 * j, a[j]); store(q.acc + 8 * j, b[j]); }
}

// The same for one pixel (two accumulators over even / odd channels, for latency).
template <int NV>
inline void madd1(const Neighbour& p, const float* w, int cin) {
    v8 a[NV], b[NV];
    for (int j = 0; j < NV; ++j) { a[j] = load(p.acc + 8 * j); b[j] = v8{}; }
    int ci = 0;
    for (; ci + 1 < cin; ci += 2) {
        v8 x0 = v8{} + p.x[ci] * p.m, x1 = v8{} + p.x[ci + 1] * p.m;
        const float* row = w + (long)ci * NV * 8;
        for (int j = 0; j < NV; ++j) {
            a[j] += x0 * load(row + 8 * j);
            b[j] += x1 * load(row + NV * 8 + 8 * j);
        }
    }
    if (ci < cin) {
        v8 x0 = v8{} + p.x[ci] * p.m;
        const float* row = w + (long)ci * NV * 8;
        for (int j = 0; j < NV; ++j) a[j] += x0 * load(row + 8 * j);
    }
    for (int j = 0; j < NV; ++j) store(p.acc + 8 * j, a[j] + b[j]);
}

// One image row (b, y) of the output: zeros at inactive pixels, the conv elsewhere.
template <int NV>
void conv_row(const Conv& c, int row) {
    constexpr int cout = NV * 8;
    const int r = c.ksize / 2, b = row / c.height, y = row % c.height;
    const long image = (long)b * c.height * c.width;
    const float* mask = c.mask + image;
    const float* mask_row = mask + (long)y * c.width;
    float* out_row = c.out + (long)row * c.width * c.out_stride;
    alignas(32) float acc[BLOCK][cout];
    int cols[BLOCK];
    Neighbour taps[BLOCK];
    if (y + r + 1 < c.height) {  // the next row's new input row: start loading its active pixels
        const long next = (long)(y + r + 1) * c.width;
        for (int x = 0; x < c.width; ++x)
            if (mask[next + x] != 0.0f)
                for (int k = 0; k < c.cin; k += 16) __builtin_prefetch(c.x + (image + next + x) * c.x_stride + k);
    }
    for (int x = 0; x < c.width;) {
        int n = 0;  // the next (up to) BLOCK active pixels of the row
        for (; x < c.width && n < BLOCK; ++x) {
            if (mask_row[x] != 0.0f) cols[n++] = x;
            else std::memset(out_row + (long)x * c.out_stride, 0, sizeof(float) * cout);
        }
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < NV; ++j) store(acc[i] + 8 * j, c.bias ? load(c.bias + 8 * j) : v8{});
        for (int dy = -r; dy <= r; ++dy) {
            const int yy = y + dy;
            if (!n || yy < 0 || yy >= c.height) continue;
            for (int dx = -r; dx <= r; ++dx) {
                int k = 0;  // the block's pixels whose neighbour at (dy, dx) is active
                for (int i = 0; i < n; ++i) {
                    const int xx = cols[i] + dx;
                    if (xx < 0 || xx >= c.width) continue;
                    const long q = (long)yy * c.width + xx;
                    if (mask[q] != 0.0f) taps[k++] = Neighbour{acc[i], c.x + (image + q) * c.x_stride, mask[q]};
                }
                const float* w = c.w + (long)((dy + r) * c.ksize + dx + r) * c.cin * cout;
                int i = 0;
                for (; i + 1 < k; i += 2) madd2<NV>(taps[i], taps[i + 1], w, c.cin);
                if (i < k) madd1<NV>(taps[i], w, c.cin);
            }
        }
        for (int i = 0; i < n; ++i) {
            const v8 m = v8{} + mask_row[cols[i]];
            float* o = out_row + (long)cols[i] * c.out_stride;
            for (int j = 0; j < NV; ++j) store(o + 8 * j, load(acc[i] + 8 * j) * m);
        }
    }
}

// Image rows are handed out four at a time to OpenMP threads: PyTorch's own pool,
// as the library links libgomp.so.1, which a PyTorch wheel has already loaded
// under that name. (Threads of our own would wait for PyTorch's, which spin for
// a while after each of its ops.)
template <int NV>
void run(const Conv& c, int threads) {
    const int rows = c.batch * c.height;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (int row = 0; row < rows; ++row) conv_row<NV>(c, row);
}

}  // namespace

// Returns 0, or 1 (nothing written) when Cout is not a multiple of 8 up to 64 or
// the kernel size is not odd.
extern "C" int sparse_conv2d_nhwc(const float* x, long x_stride, const float* mask, const float* w,
                                  const float* bias, int batch, int height, int width, int cin,
                                  int cout, int ksize, float* out, long out_stride, int threads) {
    const Conv c{x, x_stride, mask, w, bias, batch, height, width, cin, cout, ksize, out, out_stride};
    if (ksize % 2 == 0) return 1;
    switch (cout) {
        case 8: run<1>(c, threads); return 0;
        case 16: run<2>(c, threads); return 0;
        case 24: run<3>(c, threads); return 0;
        case 32: run<4>(c, threads); return 0;
        case 40: run<5>(c, threads); return 0;
        case 48: run<6>(c, threads); return 0;
        case 56: run<7>(c, threads); return 0;
        case 64: run<8>(c, threads); return 0;
        default: return 1;
    }
}
