"""Published scores to set beside ours, with where each number comes from.

Sources (text in ``../shared/papers``):
- SPAIR: Purohit et al., ICCV 2021, Tables 1 (deraining, Y channel), 2 (trained
  and tested on SPA-Data / Rain100H alone), 3 (raindrop, Qian et al. test_a),
  4 (ISTD, Lab) and 5 (deblurring).
- MPRNet: Zamir et al., CVPR 2021, Tables 2 (deraining), 3 (GoPro, HIDE), 4 (RealBlur-J).
Table 4 of SPAIR lists one value fewer than methods in our copy, so only its
unambiguous first (input) and last (SPAIR) columns are kept.
"""

from __future__ import annotations

S1, S2, S3, S4, S5 = (f"SPAIR Table {i}" for i in range(1, 6))
M2, M3, M4 = (f"MPRNet Table {i}" for i in (2, 3, 4))

# dataset -> rows of (method, {metric: value as printed in the paper}, source)
PUBLISHED: dict[str, list[tuple[str, dict[str, str], str]]] = {
    "Test100": [
        ("SPAIR", {"psnr": "30.35", "ssim": "0.909"}, S1),
        ("MPRNet", {"psnr": "30.27", "ssim": "0.897"}, M2),
        ("MSPFN", {"psnr": "27.50", "ssim": "0.876"}, S1),
        ("PReNet", {"psnr": "24.81", "ssim": "0.851"}, S1),
    ],
    "Rain100H": [
        ("SPAIR", {"psnr": "30.95", "ssim": "0.892"}, S1),
        ("MPRNet", {"psnr": "30.41", "ssim": "0.890"}, M2),
        ("MSPFN", {"psnr": "28.66", "ssim": "0.860"}, S1),
        ("PReNet", {"psnr": "26.77", "ssim": "0.858"}, S1),
        ("SPAIR, trained on Rain100H only", {"psnr": "31.69", "ssim": "0.9201"}, S2),
        ("RCDNet, trained on Rain100H only", {"psnr": "31.28", "ssim": "0.9093"}, S2),
    ],
    "Rain100L": [
        ("SPAIR", {"psnr": "36.93", "ssim": "0.969"}, S1),
        ("MPRNet", {"psnr": "36.40", "ssim": "0.965"}, M2),
        ("MSPFN", {"psnr": "32.40", "ssim": "0.933"}, S1),
        ("PReNet", {"psnr": "32.44", "ssim": "0.950"}, S1),
    ],
    "Test2800": [
        ("SPAIR", {"psnr": "33.34", "ssim": "0.936"}, S1),
        ("MPRNet", {"psnr": "33.64", "ssim": "0.938"}, M2),
        ("MSPFN", {"psnr": "32.82", "ssim": "0.930"}, S1),
        ("PReNet", {"psnr": "31.75", "ssim": "0.916"}, S1),
    ],
    "Test1200": [
        ("SPAIR", {"psnr": "33.04", "ssim": "0.922"}, S1),
        ("MPRNet", {"psnr": "32.91", "ssim": "0.916"}, M2),
        ("MSPFN", {"psnr": "32.39", "ssim": "0.916"}, S1),
        ("PReNet", {"psnr": "31.36", "ssim": "0.911"}, S1),
    ],
    "SPA-Data": [
        ("SPAIR, trained on SPA-Data", {"psnr": "44.10", "ssim": "0.9872"}, S2),
        ("RCDNet, trained on SPA-Data", {"psnr": "41.47", "ssim": "0.9834"}, S2),
        ("SPANet, trained on SPA-Data", {"psnr": "40.24", "ssim": "0.9811"}, S2),
    ],
    "RainDrop-A": [
        ("SPAIR", {"psnr": "32.73", "ssim": "0.9410"}, S3),
        ("AGAN (Qian et al.)", {"psnr": "31.51", "ssim": "0.9213"}, S3),
        ("Quan et al.", {"psnr": "31.44", "ssim": "0.9263"}, S3),
        ("DuRN", {"psnr": "31.24", "ssim": "0.9259"}, S3),
    ],
    "ISTD": [
        ("SPAIR", {"rmse_s": "8.05", "rmse_ns": "5.47", "rmse": "5.88"}, S4),
        ("input (shadow image)", {"rmse_s": "32.12", "rmse_ns": "7.19", "rmse": "10.97"}, S4),
    ],
    "GoPro": [
        ("SPAIR", {"psnr": "32.06", "ssim": "0.953"}, S5),
        ("MPRNet", {"psnr": "32.66", "ssim": "0.959"}, M3),
        ("Suin et al.", {"psnr": "31.85", "ssim": "0.948"}, S5),
    ],
    "HIDE": [
        ("SPAIR", {"psnr": "30.29", "ssim": "0.931"}, S5),
        ("MPRNet", {"psnr": "30.96", "ssim": "0.939"}, M3),
        ("Suin et al.", {"psnr": "29.98", "ssim": "0.930"}, S5),
    ],
    "RealBlur-J": [
        ("SPAIR, trained on GoPro", {"psnr": "28.81", "ssim": "0.875"}, S5),
        ("MPRNet, trained on GoPro", {"psnr": "28.70", "ssim": "0.873"}, M4),
        ("DMPHN, trained on GoPro", {"psnr": "28.42", "ssim": "0.860"}, S5),
    ],
}
