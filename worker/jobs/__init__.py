"""One module per job kind (SFT, reward model, DPO, PPO, RLOO, generation), routed to `gpu`."""
