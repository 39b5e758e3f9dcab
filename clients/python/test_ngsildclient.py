"""Orange's `ngsildclient` (0.5.2) drives the broker as an application does: Singapore's car
parks and air-quality stations as Smart Data Models entities carrying their @context in the
body, its batch calls (which post to `/entityOperations/*/`) and its tenant creation, queries by
type, `q` and geometry, attribute updates, a subscription whose notification reaches the test's
receiver, the temporal history, and deletes."""

import pytest
from ngsildclient import Client, Entity
from ngsildclient.api.exceptions import NgsiResourceNotFoundError
from ngsildclient.api.helper.subscription import SubscriptionBuilder
from ngsildclient.api.helper.temporal import TemporalQuery

import smartdatamodels as sdm
from harbor import CORE_CONTEXT


@pytest.fixture
def client(broker, tenant):
    with Client(hostname="127.0.0.1", port=broker.port, tenant=tenant, verbose=False) as c:
        yield c


@pytest.fixture
def ctx(receiver):
    """The application's @context: its own terms, then the core context."""
    return receiver.context_url


def entity(row, ctx):
    return Entity.from_dict({**row, "@context": [ctx, CORE_CONTEXT]})


def everything(ctx):
    return [entity(row, ctx) for row in sdm.car_parks() + sdm.air_quality_stations()]


def test_tenant_is_created_on_connect(broker, tenant, ctx):
    # The constructor probes `GET /entities?type=None`, creates the tenant with a batch upsert
    # on `/entityOperations/upsert/` when the probe fails, and raises when it cannot connect.
    with Client(hostname="127.0.0.1", port=broker.port, tenant=tenant, verbose=False) as c:
        assert c.is_connected()
        assert c.create(entity(sdm.car_parks()[0], ctx))
        assert c.exists(sdm.parking_id("SG-MarinaSquare"))


def test_create_and_retrieve_round_trip(client, ctx):
    marina = sdm.car_parks()[0]
    assert client.create(entity(marina, ctx))

    got = client.get(marina["id"], ctx=ctx)
    assert got.id == marina["id"]
    assert got.type == "OffStreetParking"
    assert got["name"]["value"] == "Marina Square car park"
    assert got["totalSpotNumber"]["value"] == 860
    assert got["availableSpotNumber"]["value"] == 121
    assert got["availableSpotNumber"]["observedAt"] == "2024-05-06T08:00:00Z"
    assert got["category"]["value"] == ["public", "feeCharged", "underground"]
    assert got["address"]["value"] == {"addressCountry": "SG", "addressLocality": "Singapore"}
    assert got["location"]["value"] == {"type": "Point", "coordinates": [103.8578, 1.2912]}
    assert client.exists(marina["id"])

    raw = client.get(marina["id"], ctx=ctx, asdict=True)
    assert ctx in raw["@context"]


def test_batch_upsert_creates_then_updates(client, ctx):
    result = client.upsert(everything(ctx))
    assert result.ok and result.n_ok == 6
    # `Client.count` takes no @context, so the types are counted through `entities.count`.
    assert client.entities.count(type="OffStreetParking", ctx=ctx) == 4
    assert client.entities.count(type="AirQualityObserved", ctx=ctx) == 2

    later = [
        entity(
            {
                "id": sdm.parking_id(suffix),
                "type": "OffStreetParking",
                "availableSpotNumber": {
                    "type": "Property", "value": free + 1, "observedAt": "2024-05-06T09:00:00Z",
                },
            },
            ctx,
        )
        for suffix, *_, free in sdm.CAR_PARKS
    ]
    result = client.upsert(later, update=True)
    assert result.ok and result.n_ok == 4
    for suffix, name, *_, free in sdm.CAR_PARKS:
        got = client.get(sdm.parking_id(suffix), ctx=ctx)
        assert got["availableSpotNumber"]["value"] == free + 1
        assert got["name"]["value"] == name  # update mode keeps what the batch did not name

    again = client.create(everything(ctx))
    assert again.n_ok == 0 and again.n_err == 6


def test_queries_by_type_q_and_geometry(client, ctx):
    client.upsert(everything(ctx))

    parks = client.query(type="OffStreetParking", ctx=ctx)
    assert sorted(e.id for e in parks) == sorted(sdm.parking_id(s) for s, *_ in sdm.CAR_PARKS)
    free = client.query(type="OffStreetParking", q="availableSpotNumber>100", ctx=ctx)
    assert sorted(e.id for e in free) == sorted(
        sdm.parking_id(s) for s in ("SG-MarinaSquare", "SG-SuntecCity", "SG-Changi-T3")
    )
    assert client.entities.count(type="OffStreetParking", q="availableSpotNumber<10", ctx=ctx) == 1
    polluted = client.query(q="no2>30;airQualityLevel==\"moderate\"", ctx=ctx)
    assert [e.id for e in polluted] == ["urn:ngsi-ld:AirQualityObserved:SG-Marina"]

    # Geo-queries through the POST query form (5.7.2 via 6.23); see docs/clients.md for why
    # not through `gq`.
    near = client.alt.query(
        {
            "type": "Query",
            "entities": [{"type": "OffStreetParking"}],
            "geoQ": {
                "geometry": "Point",
                "coordinates": list(sdm.MARINA),
                "georel": "near;maxDistance==1000",
            },
        },
        ctx=ctx,
    )
    assert sorted(e.id for e in near) == [
        sdm.parking_id("SG-MarinaSquare"),
        sdm.parking_id("SG-SuntecCity"),
    ]
    within = client.alt.query(
        {
            "type": "Query",
            "entities": [{"type": "OffStreetParking"}, {"type": "AirQualityObserved"}],
            "geoQ": {"geometry": "Polygon", "coordinates": [sdm.MARINA_BAY], "georel": "within"},
        },
        ctx=ctx,
    )
    assert sorted(e.id for e in within) == [
        "urn:ngsi-ld:AirQualityObserved:SG-Marina",
        sdm.parking_id("SG-MarinaSquare"),
        sdm.parking_id("SG-SuntecCity"),
    ]
    assert client.alt.count({"type": "Query", "entities": [{"type": "AirQualityObserved"}]}, ctx=ctx) == 2


def test_updates_attributes(client, ctx):
    client.upsert(everything(ctx))
    eid = sdm.parking_id("SG-ION-Orchard")

    patch = entity(
        {"id": eid, "type": "OffStreetParking", "availableSpotNumber": {"type": "Property", "value": 0}},
        ctx,
    )
    result = client.batch.update([patch])
    assert result.ok
    got = client.get(eid, ctx=ctx)
    assert got["availableSpotNumber"]["value"] == 0
    assert got["totalSpotNumber"]["value"] == 500

    # Entity-level update: the library replaces the whole entity (delete, then create).
    got["status"]["value"] = "full"
    got.rmsysattrs()
    assert client.update(got)
    after = client.get(eid, ctx=ctx)
    assert after["status"]["value"] == "full"
    assert after["availableSpotNumber"]["value"] == 0

    # noOverwrite: the status the broker holds stays.
    status = {"type": "Property", "value": "open"}
    client.batch.update([entity({"id": eid, "type": "OffStreetParking", "status": status}, ctx)], overwrite=False)
    assert client.get(eid, ctx=ctx)["status"]["value"] == "full"


def test_subscription_notifies_and_unsubscribes(client, receiver, tenant, ctx):
    client.upsert(everything(ctx))
    path = f"/ngsildclient/{tenant}"
    subscription = (
        SubscriptionBuilder(f"{receiver.url}{path}")
        .description("air quality in Singapore")
        .select_type("AirQualityObserved")
        .watch(["no2"])
        .notif(["no2", "airQualityLevel"])
        .context(ctx)
        .build()
    )
    sid = client.subscriptions.create(subscription)
    assert client.subscriptions.exists(sid)
    assert [s["id"] for s in client.subscriptions.list()] == [sid]
    # The library sends its Link header with the core context's URL as `rel` instead of the
    # JSON-LD context relation (6.3.5), so the broker compacts with the core context only and
    # the application's terms come back as IRIs (docs/clients.md).
    assert client.subscriptions.get(sid, ctx=ctx)["watchedAttributes"] == [
        "https://smartdatamodels.org/dataModel.Environment/no2"
    ]

    reading = entity(
        {
            "id": "urn:ngsi-ld:AirQualityObserved:SG-Clementi",
            "type": "AirQualityObserved",
            "no2": {"type": "Property", "value": 61.5, "unitCode": "GQ", "observedAt": "2024-05-06T09:00:00Z"},
            "airQualityLevel": {"type": "Property", "value": "unhealthy"},
        },
        ctx,
    )
    assert client.batch.update([reading]).ok

    note = receiver.wait(
        path, lambda body: any(e.get("no2", {}).get("value") == 61.5 for e in body.get("data", []))
    )
    assert note["headers"]["Content-Type"].startswith("application/ld+json")
    body = note["body"]
    assert body["subscriptionId"] == sid
    [station] = body["data"]
    assert station["id"] == "urn:ngsi-ld:AirQualityObserved:SG-Clementi"
    assert station["airQualityLevel"]["value"] == "unhealthy"
    assert station["no2"]["unitCode"] == "GQ"
    assert "location" not in station

    assert client.subscriptions.delete("air quality")
    assert client.subscriptions.list() == []
    assert not client.subscriptions.exists(sid)


def test_reads_temporal_history(client, ctx):
    marina = sdm.car_parks()[0]
    client.create(entity(marina, ctx))
    for hour, free in ((9, 80), (10, 35)):
        reading = entity(
            {
                "id": marina["id"],
                "type": "OffStreetParking",
                "availableSpotNumber": {
                    "type": "Property", "value": free, "observedAt": f"2024-05-06T{hour:02}:00:00Z",
                },
            },
            ctx,
        )
        assert client.batch.update([reading]).ok

    troe = client.temporal.get(marina["id"], attrs=["availableSpotNumber"], ctx=ctx)
    assert troe["id"] == marina["id"]
    values = troe["availableSpotNumber"]["values"]
    assert sorted(values, key=lambda v: v[1]) == [
        [121, "2024-05-06T08:00:00Z"],
        [80, "2024-05-06T09:00:00Z"],
        [35, "2024-05-06T10:00:00Z"],
    ]


# ngsildclient's temporal queries always send `options=count,temporalValues`, an Orion-LD
# form the broker serves as `count=true` (docs/conformance.md).
def test_queries_temporal_history_by_type(client, ctx):
    client.upsert(everything(ctx))
    reading = entity(
        {
            "id": sdm.parking_id("SG-SuntecCity"),
            "type": "OffStreetParking",
            "availableSpotNumber": {"type": "Property", "value": 80, "observedAt": "2024-05-06T09:00:00Z"},
        },
        ctx,
    )
    assert client.batch.update([reading]).ok

    window = TemporalQuery().between("2024-05-06T08:30:00Z", "2024-05-06T09:30:00Z")
    troes = client.temporal.query(type="OffStreetParking", attrs=["availableSpotNumber"], tq=window, ctx=ctx)
    assert len(troes) == 1
    assert troes[0]["id"] == sdm.parking_id("SG-SuntecCity")
    assert troes[0]["availableSpotNumber"]["values"] == [[80, "2024-05-06T09:00:00Z"]]


def test_deletes_entities(client, ctx):
    client.upsert(everything(ctx))
    assert client.delete(client.get(sdm.parking_id("SG-MarinaSquare"), ctx=ctx))
    with pytest.raises(NgsiResourceNotFoundError):
        client.get(sdm.parking_id("SG-MarinaSquare"), ctx=ctx)

    result = client.delete([entity(row, ctx) for row in sdm.air_quality_stations()])
    assert result.ok and result.n_ok == 2
    assert client.entities.count(type="AirQualityObserved", ctx=ctx) == 0

    rest = client.query(type="OffStreetParking", ctx=ctx)
    assert len(rest) == 3
    assert client.batch.delete(rest).n_ok == 3
    assert client.entities.count(type="OffStreetParking", ctx=ctx) == 0
