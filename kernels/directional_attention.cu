// SNL's four-direction masked attention scans (SPAIR Eq. 3-4), see
// directional_attention in restore_cli/ops/reference.py.
//
// One thread per (active pixel, direction), directions ordered left, right,
// up, down. The thread walks outward from its pixel over the clean
// (mask < 0.5) keys on that side with an online softmax, accumulating the
// weighted features straight into `out`, which must be zeroed. No keys on
// that side leaves zeros. The result is scaled by the pixel's mask value.

extern "C" __global__ void directional_attention(const float* x, const float* mask,
                                                 const int* index, int n, int channels,
                                                 int height, int width, float scale, float* out) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n * 4) return;
    int i = t / 4;
    int dir = t % 4;
    int dx = dir == 0 ? -1 : dir == 1 ? 1 : 0;
    int dy = dir == 2 ? -1 : dir == 3 ? 1 : 0;
    int hw = height * width;
    int p = index[i];
    int b = p / hw;
    int y = p % hw / width;
    int xx = p % width;
    const float* feats = x + (long long)b * channels * hw;  // channel stride hw
    const float* keys_mask = mask + (long long)b * hw;
    float* acc = out + ((long long)b * 4 + dir) * channels * hw + p % hw;
    const float* q = feats + p % hw;

    float m = 0.0f;  // running max score
    float s = 0.0f;  // sum of exp(score - m); 0 until the first key
    for (int ky = y + dy, kx = xx + dx; ky >= 0 && ky < height && kx >= 0 && kx < width;
         ky += dy, kx += dx) {
        int kp = ky * width + kx;
        if (keys_mask[kp] >= 0.5f) continue;
        const float* k = feats + kp;
        float dot = 0.0f;
        for (int c = 0; c < channels; ++c) dot += q[(long long)c * hw] * k[(long long)c * hw];
        float score = dot * scale;
        if (s == 0.0f) {
            m = score;
        } else if (score > m) {
            float r = expf(m - score);
            s *= r;
            for (int c = 0; c < channels; ++c) acc[(long long)c * hw] *= r;
            m = score;
        }
        float w = expf(score - m);
        s += w;
        for (int c = 0; c < channels; ++c) acc[(long long)c * hw] += w * k[(long long)c * hw];
    }
    if (s > 0.0f) {
        float f = mask[p] / s;
        for (int c = 0; c < channels; ++c) acc[(long long)c * hw] *= f;
    }
}
