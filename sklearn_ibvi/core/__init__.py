"""The estimator core: the scikit-learn estimator base, input validation, devices and row batches."""
