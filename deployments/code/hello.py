"""Inline code of the example task `hello` (see hello.yaml): stored in a task-code block."""


def main(who: str = "world") -> str:
    """Greet someone; what is printed shows up in the job's logs."""
    message = f"hello {who}"
    print(message)
    return message
