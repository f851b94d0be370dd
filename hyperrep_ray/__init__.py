"""hyperrep_ray."""
