"""Several CSMS processes and nodes on one database acting as one system."""
