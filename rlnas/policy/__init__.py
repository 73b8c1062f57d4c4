"""What the default strategy learns: the LSTM controller, its REINFORCE update, the reward model."""
