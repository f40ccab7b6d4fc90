"""One module per API resource, each attached to the client."""
