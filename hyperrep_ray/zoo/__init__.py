"""Model zoo: the zoo CNN and population training."""
