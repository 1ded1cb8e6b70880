"""What each route does, one module per area; each exports ``routes``, a RouteTable."""
