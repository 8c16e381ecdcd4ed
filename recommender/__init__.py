"""Songs like this: a catalog from Spotify and yt-dlp samples, searched by embedding."""
