import sys
from pathlib import Path

# the checker module lives beside the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))
