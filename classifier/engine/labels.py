"""The engine's label lists: the musicnn MSD tags, and genre spellings for training."""
from __future__ import annotations

# How a head trained on folders named by genre spells those genres in a file's tags (a head
# stores its own spellings; the app reads them from the active head, never from here).
TAG_SPELLING: dict[str, str] = {
    "blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco",
    "hiphop": "Hip-Hop", "jazz": "Jazz", "metal": "Metal", "pop": "Pop",
    "reggae": "Reggae", "rock": "Rock",
}

# The 50 output tags of the musicnn MSD model, in the order of its output units.
MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)

# The MSD tags that name a genre or style (not a decade, mood or voice): reported as "styles".
STYLE_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz",
    "metal", "chillout", "classic rock", "soul", "indie rock", "electronica", "folk", "punk",
    "blues", "hard rock", "ambient", "acoustic", "experimental", "Hip-Hop", "country",
    "easy listening", "funk", "electro", "heavy metal", "Progressive rock", "rnb", "indie pop",
    "House",
)
