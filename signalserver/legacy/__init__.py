"""Moving over from the original app: its configuration documents, read as it read them."""
