from tests.helpers import Api


def test_owner_profile_over_socket(owner: Api) -> None:
    r = owner.get("/api/v1/me")
    assert r.status_code == 200
    assert r.json()["username"] == "sandbox.owner"
