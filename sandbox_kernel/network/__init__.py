"""Network by allow-list: host patterns and the egress proxy the trusted kernel owns."""
