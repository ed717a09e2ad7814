"""Reading movies.csv and ml-youtube.csv: good files read right, bad files fail with file, row and column named."""

from __future__ import annotations

import pytest

from lib.prepare.movielens import (
    SHORT_URL,
    TRAILING_SLASH,
    WATCH_URL,
    WHITESPACE,
    MovieLensError,
    clean_youtube_id,
    read_movies,
    read_youtube,
)

MOVIES = (
    "movieId,title,genres\n"
    '1,"Toy Story, The (1995)",Adventure|Animation|Children|Comedy|Fantasy\n'
    '2,"Amélie ""Le fabuleux destin"" (2001)",Comedy|Romance\n'
    "3,NA,Drama\n"
)
YOUTUBE = 'youtubeId,movieId,title\nK26_sDKnvMU,1,"Toy Story, The (1995)"\n3LPANjHIPxo,2,Amélie (2001)\n'


def write(tmp_path, name, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def test_titles_with_commas_quotes_and_non_ascii_are_read_exactly(tmp_path):
    read = read_movies(write(tmp_path, "movies.csv", MOVIES))
    assert read.frame["movieId"].tolist() == [1, 2, 3]
    assert read.frame["movieId"].dtype == "int64"
    assert read.frame["title"].tolist() == ["Toy Story, The (1995)", 'Amélie "Le fabuleux destin" (2001)', "NA"]
    assert read.frame["genres"].iloc[1] == "Comedy|Romance"
    assert read.rows_read == 3 and read.skipped == {} and read.notes == []


def test_byte_order_mark_is_tolerated_and_noted(tmp_path):
    read = read_movies(write(tmp_path, "movies.csv", b"\xef\xbb\xbf" + MOVIES.encode()))
    assert list(read.frame.columns) == ["movieId", "title", "genres"]
    assert read.frame["movieId"].tolist() == [1, 2, 3]
    assert any("byte-order mark" in n for n in read.notes)


def test_windows_line_endings_leave_no_carriage_returns(tmp_path):
    read = read_youtube(write(tmp_path, "ml-youtube.csv", YOUTUBE.replace("\n", "\r\n")))
    assert read.frame["title"].tolist() == ["Toy Story, The (1995)", "Amélie (2001)"]
    assert not read.frame.apply(lambda col: col.astype(str).str.contains("\r")).any().any()
    assert any("CRLF" in n for n in read.notes)


@pytest.mark.parametrize(
    "content", [b"", b"\xef\xbb\xbf", b"\n\n  \r\n"], ids=["zero-bytes", "bom-only", "blank-lines"]
)
def test_empty_file_is_a_clear_error(tmp_path, content):
    path = write(tmp_path, "movies.csv", content)
    with pytest.raises(MovieLensError, match=r"movies\.csv: the file is empty"):
        read_movies(path)


def test_header_without_rows_is_an_error(tmp_path):
    with pytest.raises(MovieLensError, match="header but no data rows"):
        read_youtube(write(tmp_path, "ml-youtube.csv", "youtubeId,movieId,title\n"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MovieLensError, match=r"nope\.csv: file not found"):
        read_movies(tmp_path / "nope.csv")


def test_missing_column_names_the_column_and_the_header_row(tmp_path):
    path = write(tmp_path, "movies.csv", "movieId,title\n1,Heat (1995)\n")
    with pytest.raises(MovieLensError) as err:
        read_movies(path)
    message = str(err.value)
    assert "movies.csv" in message and "row 1 (header)" in message and "'genres'" in message


@pytest.mark.parametrize("bad", ["abc", "", "1.5"])
def test_non_integer_movie_id_names_file_row_and_column(tmp_path, bad):
    path = write(tmp_path, "ml-youtube.csv", YOUTUBE + f"zzzzzzzzzzz,{bad},Broken (1999)\n")
    with pytest.raises(MovieLensError) as err:
        read_youtube(path)
    message = str(err.value)
    assert "ml-youtube.csv" in message and "row 4" in message and "column 'movieId'" in message
    assert repr(bad) in message


def test_row_with_extra_fields_is_an_error_naming_the_row(tmp_path):
    path = write(tmp_path, "movies.csv", MOVIES + "4,Heat, The (1995),Action|Crime\n")
    with pytest.raises(MovieLensError, match=r"movies\.csv, row 5: expected 3 fields, saw 4"):
        read_movies(path)


def test_row_with_too_few_fields_reports_the_empty_movie_id(tmp_path):
    path = write(tmp_path, "ml-youtube.csv", YOUTUBE + "zzzzzzzzzzz\n")
    with pytest.raises(MovieLensError, match=r"ml-youtube\.csv, row 4, column 'movieId': '' is not an integer"):
        read_youtube(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "movies.csv", MOVIES.encode() + b"4,Caf\xe9 (1990),Drama\n")
    with pytest.raises(MovieLensError, match=r"movies\.csv, line 5: not valid UTF-8"):
        read_movies(path)


def test_one_movie_with_two_genre_sets_is_an_error_naming_both_rows(tmp_path):
    path = write(tmp_path, "movies.csv", MOVIES + "2,Amélie (2001),Drama\n")
    with pytest.raises(MovieLensError, match=r"rows 3, 5, column 'movieId': movie 2"):
        read_movies(path)


def test_exact_repeats_are_skipped_and_counted(tmp_path):
    movies = read_movies(write(tmp_path, "movies.csv", MOVIES + "3,NA,Drama\n"))
    youtube = read_youtube(write(tmp_path, "ml-youtube.csv", YOUTUBE + "3LPANjHIPxo,2,Amélie (2001)\n"))
    assert movies.rows_read == 4 and len(movies.frame) == 3
    assert movies.skipped == {"exact repeats of a row": 1}
    assert youtube.rows_read == 3 and len(youtube.frame) == 2
    assert youtube.skipped == {"exact repeats of a row": 1}


def test_blank_and_invalid_youtube_ids_are_skipped_and_counted(tmp_path):
    extra = ",3,NA\n  ,3,NA\n../../etc,3,NA\n"
    read = read_youtube(write(tmp_path, "ml-youtube.csv", YOUTUBE + extra))
    assert read.rows_read == 5
    assert read.skipped == {"blank youtubeId": 2, "youtubeId not a YouTube id": 1}
    assert read.frame["youtubeId"].tolist() == ["K26_sDKnvMU", "3LPANjHIPxo"]
    assert any("row 6" in n and "../../etc" in n for n in read.notes)


def test_youtube_ids_that_look_numeric_stay_text(tmp_path):
    read = read_youtube(write(tmp_path, "ml-youtube.csv", "youtubeId,movieId,title\n00123456789,1,X (1990)\n"))
    assert read.frame["youtubeId"].tolist() == ["00123456789"]


# --- youtubeIds with cruft around them (the real ml-youtube.csv has some) ----------------------

ID = "K26_sDKnvMU"


@pytest.mark.parametrize(
    "raw, how",
    [
        (ID, []),
        (f"  {ID}\t", [WHITESPACE]),
        (f"{ID}/", [TRAILING_SLASH]),
        (f" {ID}/ ", [WHITESPACE, TRAILING_SLASH]),
        (f"https://www.youtube.com/watch?v={ID}", [WATCH_URL]),
        (f"http://youtube.com/watch?v={ID}", [WATCH_URL]),
        (f"https://m.youtube.com/watch?v={ID}&feature=youtu.be", [WATCH_URL]),
        (f"https://www.youtube.com/watch?feature=player_embedded&v={ID}&t=30s", [WATCH_URL]),  # v= not first
        (f"HTTPS://WWW.YouTube.com/watch/?v={ID}#t=1m", [WATCH_URL]),
        (f"www.youtube.com/watch?v={ID}", [WATCH_URL]),  # pasted without its scheme
        (f"https://youtu.be/{ID}", [SHORT_URL]),
        (f"http://youtu.be/{ID}/?t=12", [SHORT_URL]),
        (f"youtu.be/{ID}", [SHORT_URL]),
        (f" https://youtu.be/{ID} ", [WHITESPACE, SHORT_URL]),
    ],
)
def test_unambiguous_cruft_is_cleaned_into_the_id(raw, how):
    assert clean_youtube_id(raw) == (ID, how)


@pytest.mark.parametrize(
    "raw",
    [
        "../../etc",
        f"{ID}//x",
        f"{ID} trailer",  # running text
        f"{ID}?t=10",  # a query without a URL
        f"https://www.youtube.com/watch?v={ID}&v=3LPANjHIPxo",  # two different ids: which one?
        f"https://www.youtube.com/watch?v={ID}x",  # 12 characters
        "https://www.youtube.com/watch?v=",
        "https://www.youtube.com/watch?list=PL123",
        f"https://www.youtube.com/embed/{ID}",  # another kind of page: not cleaned
        f"https://vimeo.com/watch?v={ID}",  # another site
        f"https://youtube.com.evil.example/watch?v={ID}",
        f"https://youtu.be/{ID}/extra",
        f"https://youtu.be:8080/{ID}",
        f"ftp://youtu.be/{ID}",
        f"https://user@youtu.be/{ID}",
        "https://[::1/watch?v=K26_sDKnvMU",  # malformed host
    ],
)
def test_what_cannot_be_cleaned_is_refused(raw):
    assert clean_youtube_id(raw) == (None, [])


def test_cleaned_ids_are_counted_and_listed_and_the_rest_rejected_by_row(tmp_path):
    extra = (
        "3LPANjHIPxo/,3,A (1990)\n"
        '" https://www.youtube.com/watch?feature=related&v=xe8nrvEexwo ",4,B (1991)\n'
        "https://youtu.be/2GfZl4kuVNI,5,C (1992)\n"
        "https://www.youtube.com/user/someone,6,D (1993)\n"
        "  ,7,E (1994)\n"
    )
    read = read_youtube(write(tmp_path, "ml-youtube.csv", YOUTUBE + extra))
    assert read.rows_read == 7
    assert read.frame["youtubeId"].tolist() == [
        "K26_sDKnvMU",
        "3LPANjHIPxo",
        "3LPANjHIPxo",
        "xe8nrvEexwo",
        "2GfZl4kuVNI",
    ]
    assert read.frame["movieId"].tolist() == [1, 2, 3, 4, 5]
    assert read.cleaned == [
        {"row": 4, "raw": "3LPANjHIPxo/", "youtubeId": "3LPANjHIPxo", "how": [TRAILING_SLASH]},
        {
            "row": 5,
            "raw": " https://www.youtube.com/watch?feature=related&v=xe8nrvEexwo ",
            "youtubeId": "xe8nrvEexwo",
            "how": [WHITESPACE, WATCH_URL],
        },
        {"row": 6, "raw": "https://youtu.be/2GfZl4kuVNI", "youtubeId": "2GfZl4kuVNI", "how": [SHORT_URL]},
    ]
    assert read.rejected == [{"row": 7, "raw": "https://www.youtube.com/user/someone"}]
    assert read.skipped == {"blank youtubeId": 1, "youtubeId not a YouTube id": 1}
    assert any("3 ids cleaned" in n for n in read.notes)
    assert any("row 7" in n and "youtube.com/user/someone" in n for n in read.notes)
