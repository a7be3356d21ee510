"""`python -m helpers.sandbox RUN`: chat with the base and the finetuned model side by side in a terminal.

The entry only; the chat is helpers/terminal_chat.py, the notebook panel is helpers.widgets.chat_sandbox.
"""

import sys

from helpers.terminal_chat import main

if __name__ == "__main__":
    sys.exit(main())
