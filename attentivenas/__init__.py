"""AttentiveNAS, BigNAS and DSNAS in one weight-sharing supernet; `python -m attentivenas --help` lists the stages."""

__version__ = "0.1.0"
