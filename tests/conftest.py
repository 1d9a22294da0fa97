import torch

# Small networks run fastest on one thread, and a 2-core CI machine is not oversubscribed by
# parallel-search tests that start their own workers.
torch.set_num_threads(1)
