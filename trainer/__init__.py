"""hone's built-in objective: a PyTorch MLP with every technique of the lecture as a knob.

``trainer.config`` is torch-free (the service validates with it); the rest uses torch.
"""
