// Mask-guided sparse convolution (SPAIR Eq. 2) that only touches active pixels.
//
// A pixel is active where mask != 0. The host side (restore_cli/ops/cuda.py):
//   1. count_active_rows, exclusive prefix sum of the counts, write_active_rows:
//      the active pixels' flat indices (b*H*W + y*W + x) in raster order;
//   2. gather_patches: im2col rows for the active pixels only, each neighbour
//      multiplied by its mask value (zero outside the image);
//   3. GEMM of those rows with the weights (cuBLAS, via torch.matmul);
//   4. scatter_rows: out[p] = mask[p] * (row + bias) into a zeroed output.
//
// One thread per output element, no shared memory and no barriers, so the
// same source also builds for the CPU through kernels/host_shim.h.

extern "C" __global__ void count_active_rows(const float* mask, int rows, int width, int* counts) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* m = mask + (long long)r * width;
    int n = 0;
    for (int x = 0; x < width; ++x) n += m[x] != 0.0f;
    counts[r] = n;
}

// offsets[r]: number of active pixels in the rows before r (exclusive prefix sum).
extern "C" __global__ void write_active_rows(const float* mask, int rows, int width,
                                             const int* offsets, int* index) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* m = mask + (long long)r * width;
    int out = offsets[r];
    for (int x = 0; x < width; ++x)
        if (m[x] != 0.0f) index[out++] = r * width + x;
}

// cols is (n, channels * ksize * ksize), row i for the active pixel index[i],
// columns ordered (channel, ky, kx) like a Conv2d weight.
extern "C" __global__ void gather_patches(const float* x, const float* mask, const int* index,
                                          int n, int channels, int height, int width, int ksize,
                                          float* cols) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int taps = ksize * ksize;
    if (t >= (long long)n * channels * taps) return;
    int i = (int)(t / (channels * taps));
    int c = (int)(t / taps % channels);
    int k = (int)(t % taps);
    int hw = height * width;
    int p = index[i];
    int b = p / hw;
    int y = p % hw / width + k / ksize - ksize / 2;
    int xx = p % width + k % ksize - ksize / 2;
    float v = 0.0f;
    if (y >= 0 && y < height && xx >= 0 && xx < width) {
        int s = y * width + xx;
        v = x[((long long)b * channels + c) * hw + s] * mask[(long long)b * hw + s];
    }
    cols[t] = v;
}

// rows is (n, out_channels); out (batch, out_channels, H, W) must be zeroed.
extern "C" __global__ void scatter_rows(const float* rows, const float* bias, const float* mask,
                                        const int* index, int n, int out_channels, int hw,
                                        float* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)n * out_channels) return;
    int i = (int)(t / out_channels);
    int co = (int)(t % out_channels);
    int p = index[i];
    int b = p / hw;
    out[((long long)b * out_channels + co) * hw + p % hw] = mask[p] * (rows[t] + bias[co]);
}
