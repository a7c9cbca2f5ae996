"""What requests cost: prices per model, and the cost of an answer's usage."""
