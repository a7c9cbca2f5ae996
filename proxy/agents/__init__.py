"""What an agent's turn needs from the proxy when rotation moves it between models: thought
signatures on the way out (:mod:`.signatures`), and empty answers taken for failures
(:mod:`.empty`)."""
