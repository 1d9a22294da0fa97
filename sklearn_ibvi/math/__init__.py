"""The mathematics of the bounds: likelihoods, the entropy of SGD, Gaussian families, priors."""
