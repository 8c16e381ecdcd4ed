"""recommender.spotify against the local Spotify stand-in, through real spotipy and requests."""

from __future__ import annotations

import pytest

from recommender.spotify import (
    RateLimited,
    RetryPolicy,
    SpotifyClient,
    SpotifyError,
    SpotifyNotConfigured,
    advance,
    artist_genres,
    seed_id,
)
from tests.app.recommender.standins import SpotifyStandIn


def client_for(
    server: SpotifyStandIn, max_retries: int = 3, max_retry_after: float = 5.0
) -> tuple[SpotifyClient, list[float]]:
    waits: list[float] = []
    policy = RetryPolicy(
        max_retries=max_retries,
        max_retry_after=max_retry_after,
        backoff_base=0.01,
        sleep=waits.append,
    )
    client = SpotifyClient(
        SpotifyStandIn.CLIENT_ID,
        SpotifyStandIn.CLIENT_SECRET,
        api_url=server.api_url,
        token_url=server.token_url,
        policy=policy,
    )
    return client, waits


def drain(
    client: SpotifyClient, kind: str, value: str, want: int = 1000, state: dict | None = None
) -> tuple[list, dict, bool]:
    state, tracks, exhausted = dict(state or {}), [], False
    while not exhausted and len(tracks) < want:
        step = advance(client, kind, value, state, want - len(tracks))
        tracks += step.tracks
        state, exhausted = step.state, step.exhausted
    return tracks, state, exhausted


@pytest.fixture
def jazz(spotify: SpotifyStandIn):
    artist = spotify.artist("Nina Simone", genres=["jazz", "soul"])
    album = spotify.album(
        artist, "Little Girl Blue", [(f"Song {n}", 180 + n) for n in range(1, 24)], "1959-02-01"
    )
    return artist, album


def test_client_credentials_token_then_bearer_calls(spotify, jazz):
    client, _ = client_for(spotify)
    artist, _ = jazz
    assert client.artist(artist.id)["name"] == "Nina Simone"
    client.artist(artist.id)
    # One token for both calls, sent as a bearer token to the stand-in's API prefix.
    assert len(spotify.requests("^/api/token$", "POST")) == 1
    calls = spotify.requests(f"^/v1/artists/{artist.id}$")
    assert len(calls) == 2
    assert all(c.headers["Authorization"] == "Bearer token-1" for c in calls)


def test_wrong_credentials_are_a_spotify_error(spotify):
    client = SpotifyClient(
        "someone",
        "wrong",
        api_url=spotify.api_url,
        token_url=spotify.token_url,
        policy=RetryPolicy(max_retries=0, sleep=lambda s: None),
    )
    with pytest.raises(SpotifyError, match="HTTP 400"):
        client.track("tr000001xxxxxxxxxxxxxx")


def test_missing_credentials_say_which_variables(settings):
    settings.SPOTIFY_CLIENT_ID = ""
    settings.SPOTIFY_CLIENT_SECRET = ""
    with pytest.raises(SpotifyNotConfigured, match="SPOTIFY_CLIENT_ID"):
        SpotifyClient.from_settings()


def test_search_pages_ten_at_a_time_with_genre_filter(spotify, jazz):
    other = spotify.artist("Metallica", genres=["metal"])
    spotify.album(other, "Master", [("Battery", 312)])
    client, _ = client_for(spotify)
    tracks, state, exhausted = drain(client, "search", 'genre:"jazz"')
    assert len(tracks) == 23 and exhausted
    assert {t.artists[0] for t in tracks} == {"Nina Simone"}
    searches = spotify.requests("^/v1/search$")
    assert [int(r.query["limit"]) for r in searches] == [10, 10, 10]
    assert [int(r.query["offset"]) for r in searches] == [0, 10, 20]
    assert state == {"offset": 23}


def test_search_asks_for_no_more_than_wanted(spotify, jazz):
    client, _ = client_for(spotify)
    step = advance(client, "search", "song", {}, want=4)
    assert len(step.tracks) == 4 and not step.exhausted
    assert spotify.requests("^/v1/search$")[0].query["limit"] == "4"
    # Going on from the state starts right after what was taken.
    step = advance(client, "search", "song", step.state, want=3)
    assert [t.title for t in step.tracks] == ["Song 5", "Song 6", "Song 7"]


def test_track_fields_from_a_search_result(spotify, jazz):
    client, _ = client_for(spotify)
    _, album = jazz
    track = advance(client, "search", "Song 1", {}, want=1).tracks[0]
    expected = album.tracks[0]
    assert track.spotify_id == expected.id
    assert track.title == "Song 1"
    assert track.artists == ["Nina Simone"] and track.artist_ids == [jazz[0].id]
    assert track.album == "Little Girl Blue" and track.album_id == album.id
    assert track.release_year == 1959
    assert track.duration_ms == 181_000
    assert track.spotify_url == f"https://open.spotify.com/track/{expected.id}"
    assert track.cover_url.endswith(f"{album.id}-300.jpg")  # the smallest one of 300 px or more


def test_album_seed_uses_the_album_then_pages_its_tracks(spotify, jazz):
    spotify.embedded_tracks = 5
    client, _ = client_for(spotify)
    _, album = jazz
    tracks, state, exhausted = drain(client, "album", album.id)
    assert [t.title for t in tracks] == [f"Song {n}" for n in range(1, 24)]
    assert exhausted and state["offset"] == 23
    # Simplified tracks carry no album: the cover and year come from albums/{id}.
    assert {t.release_year for t in tracks} == {1959}
    assert all(t.cover_url for t in tracks)
    assert len(spotify.requests(f"^/v1/albums/{album.id}$")) == 1
    offsets = [int(r.query["offset"]) for r in spotify.requests(f"^/v1/albums/{album.id}/tracks")]
    assert offsets == [5]  # the first 5 came with the album; 50 a page after that


def test_playlist_seed_reads_items_not_the_removed_tracks_path(spotify, jazz):
    _, album = jazz
    playlist = spotify.playlist(album.tracks[:12])
    client, _ = client_for(spotify)
    tracks, _, exhausted = drain(client, "playlist", playlist, want=12)
    assert [t.title for t in tracks] == [f"Song {n}" for n in range(1, 13)]
    assert exhausted
    assert spotify.requests(f"^/v1/playlists/{playlist}/items$")
    assert not spotify.requests("/tracks$")


def test_artist_seed_walks_albums_without_top_tracks(spotify):
    artist = spotify.artist("Miles Davis", genres=None)
    first = spotify.album(artist, "Kind of Blue", [("So What", 562), ("Blue in Green", 337)])
    second = spotify.album(artist, "Bitches Brew", [("Spanish Key", 1051)], "1970-03-30")
    client, _ = client_for(spotify)
    tracks, _, exhausted = drain(client, "artist", artist.id)
    assert [t.title for t in tracks] == ["So What", "Blue in Green", "Spanish Key"]
    assert exhausted
    assert [t.album_id for t in tracks] == [first.id, first.id, second.id]
    assert spotify.requests(f"^/v1/artists/{artist.id}/albums$")
    assert not spotify.requests("top-tracks|related-artists")


def test_artist_seed_resumes_inside_an_album(spotify):
    artist = spotify.artist("Miles Davis")
    spotify.album(artist, "Kind of Blue", [(f"Take {n}", 300) for n in range(1, 6)])
    spotify.embedded_tracks = 2
    client, _ = client_for(spotify)
    first, state, _ = drain(client, "artist", artist.id, want=3)
    # A new run (a new client, the state from the database) goes on with take 4.
    client, _ = client_for(spotify)
    rest, _, exhausted = drain(client, "artist", artist.id, state=state)
    assert [t.title for t in first + rest] == [f"Take {n}" for n in range(1, 6)]
    assert exhausted


def test_track_seed_and_links_and_uris(spotify, jazz):
    _, album = jazz
    wanted = album.tracks[2]
    client, _ = client_for(spotify)
    for value in (
        wanted.id,
        f"spotify:track:{wanted.id}",
        f"https://open.spotify.com/intl-de/track/{wanted.id}?si=abc",
    ):
        step = advance(client, "track", seed_id("track", value), {}, want=1)
        assert [t.spotify_id for t in step.tracks] == [wanted.id] and step.exhausted
    with pytest.raises(ValueError, match="not a Spotify album"):
        seed_id("album", "https://example.com/nothing")


def test_artist_genres_present_empty_or_missing(spotify):
    client, _ = client_for(spotify)
    with_genres = spotify.artist("A", genres=["bossa nova"])
    empty = spotify.artist("B", genres=[])
    missing = spotify.artist("C", genres=None)
    assert "genres" not in client.artist(missing.id)
    assert artist_genres(client.artist(with_genres.id)) == ["bossa nova"]
    assert artist_genres(client.artist(empty.id)) == []
    assert artist_genres(client.artist(missing.id)) == []


def test_429_waits_retry_after_then_succeeds(spotify, jazz):
    spotify.fail("^/v1/search$", (429, {"Retry-After": "2"}), (429, {"Retry-After": "1"}))
    client, waits = client_for(spotify)
    step = advance(client, "search", "song", {}, want=10)
    assert len(step.tracks) == 10
    assert len(spotify.requests("^/v1/search$")) == 3
    assert waits[0] == 2.0  # exactly Retry-After the first time
    assert waits[1] >= 1.0  # at least Retry-After, with backoff, on a repeat


def test_429_beyond_the_cap_stops_instead_of_sleeping(spotify, jazz):
    spotify.fail("^/v1/search$", (429, {"Retry-After": "86400"}))
    client, waits = client_for(spotify, max_retry_after=60)
    with pytest.raises(RateLimited, match="86400 s"):
        advance(client, "search", "song", {}, want=10)
    assert waits == []


def test_429_without_retry_after_backs_off_and_gives_up(spotify, jazz):
    spotify.fail("^/v1/search$", *[(429, {})] * 4)
    client, waits = client_for(spotify, max_retries=3)
    with pytest.raises(RateLimited, match="kept answering 429"):
        advance(client, "search", "song", {}, want=10)
    assert len(waits) == 3 and waits == sorted(waits)
    assert len(spotify.requests("^/v1/search$")) == 4


def test_server_errors_and_dropped_connections_are_retried(spotify, jazz):
    artist, _ = jazz
    spotify.fail("^/v1/artists/", (500, {}), (0, {}), (503, {}))
    client, waits = client_for(spotify, max_retries=3)
    assert client.artist(artist.id)["id"] == artist.id
    assert len(waits) == 3
    assert [r.status for r in spotify.requests("^/v1/artists/")] == [500, 0, 503, 200]


def test_server_errors_past_the_retries_are_an_error(spotify, jazz):
    spotify.fail("^/v1/artists/", *[(502, {})] * 3)
    client, waits = client_for(spotify, max_retries=2)
    with pytest.raises(SpotifyError, match="failed 3 times"):
        client.artist(jazz[0].id)
    assert len(waits) == 2


def test_token_endpoint_429_is_handled_like_the_api(spotify, jazz):
    spotify.fail("^/api/token$", (429, {"Retry-After": "1"}), (503, {}))
    client, waits = client_for(spotify)
    assert client.artist(jazz[0].id)["name"] == "Nina Simone"
    assert waits[0] == 1.0 and len(waits) == 2


def test_not_found_is_final_without_retries(spotify):
    client, waits = client_for(spotify)
    with pytest.raises(SpotifyError, match="HTTP 404"):
        client.album("al999999xxxxxxxxxxxxxx")
    assert waits == []
    assert len(spotify.requests("^/v1/albums/")) == 1


def test_spotipy_retries_are_off(spotify, jazz):
    # One 503: spotipy's urllib3 Retry (if it were on) would retry it itself, unseen by the
    # policy, and the client would record no wait.
    spotify.fail("^/v1/artists/", (503, {}))
    client, waits = client_for(spotify, max_retries=0)
    with pytest.raises(SpotifyError):
        client.artist(jazz[0].id)
    assert len(spotify.requests("^/v1/artists/")) == 1 and waits == []
