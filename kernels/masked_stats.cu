// Per-channel masked moments for SFM (SPAIR Eq. 1), see masked_mean_std in
// restore_cli/ops/reference.py.
//
// Two barrier-free passes, each a fixed-order (deterministic) reduction:
//   masked_moment_partials: one thread per (b, c, chunk of `chunk` pixels)
//     sums mask * (x - center)^power and the mask itself over its chunk;
//   masked_moment_finish: one thread per (b, c) adds its chunks in order and
//     divides by max(count, 1).
// The host runs them with power = 1, center = 0 (the mean), then power = 2,
// center = mean (the variance).

extern "C" __global__ void masked_moment_partials(const float* x, const float* mask,
                                                  const float* center, int power, int channels,
                                                  int hw, int chunk, int chunks, int total,
                                                  float* sums, float* counts) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;  // total = batch * channels * chunks
    int bc = t / chunks;
    int start = t % chunks * chunk;
    int stop = start + chunk < hw ? start + chunk : hw;
    const float* xs = x + (long long)bc * hw;
    const float* ms = mask + (long long)(bc / channels) * hw;
    float mu = center[bc];
    float s = 0.0f, n = 0.0f;
    for (int p = start; p < stop; ++p) {
        float d = xs[p] - mu;
        s += ms[p] * (power == 1 ? d : d * d);
        n += ms[p];
    }
    sums[t] = s;
    counts[t] = n;
}

extern "C" __global__ void masked_moment_finish(const float* sums, const float* counts,
                                                int chunks, int total, float* moment,
                                                float* count) {
    int bc = blockIdx.x * blockDim.x + threadIdx.x;
    if (bc >= total) return;  // total = batch * channels
    float s = 0.0f, n = 0.0f;
    for (int k = 0; k < chunks; ++k) {
        s += sums[bc * chunks + k];
        n += counts[bc * chunks + k];
    }
    moment[bc] = s / fmaxf(n, 1.0f);
    count[bc] = n;
}
