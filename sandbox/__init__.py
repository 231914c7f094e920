"""Local simulators of the outside services Herald talks to (see DESIGN.md, "The sandbox")."""
