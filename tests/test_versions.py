from monitor.versions import at_least, major_minor, parse_version


def test_parse_versions_seen_in_the_wild():
    assert parse_version("535.104.05") == (535, 104, 5)
    assert parse_version("V12.2.140") == (12, 2, 140)
    assert parse_version("2.16.0rc1") == (2, 16, 0)
    assert parse_version("release 11.8, V11.8.89") == (11, 8)


def test_garbage_versions_are_none_not_errors():
    for text in (None, "", "garbage", "v.", "N/A"):
        assert parse_version(text) is None
        assert major_minor(text) is None
        assert at_least(text, "1.0") is None


def test_at_least_pads_shorter_versions():
    assert at_least("525.60.13", "525.60.13") is True
    assert at_least("525.60", "525.60.13") is False
    assert at_least("550", "525.60.13") is True
    assert major_minor("9") == (9, 0)
