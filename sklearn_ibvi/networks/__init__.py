"""Networks: the MLP, chains of a module, variational layers and their parametrization."""
