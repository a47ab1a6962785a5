"""An app module that kills its process while being imported, as a crashing C extension does.

Workers that import it die before they boot, with a status that is not a boot error: the
arbiter must back off instead of forking in a tight loop.
"""

import os

os._exit(1)
