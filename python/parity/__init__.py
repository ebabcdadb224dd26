"""Reference computations with diffusers that the TypeScript runtime is checked against."""
