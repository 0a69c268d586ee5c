"""Generated gRPC stubs (clients/python/generate.sh); do not edit."""
