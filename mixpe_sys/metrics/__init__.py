"""Records appended by components and the recorder that holds them."""
