"""FIWARE's `filip` (0.8.1) drives the broker as an application does: Singapore's car parks and
air-quality stations as Smart Data Models entities under the application's own @context
(sent in the Link header), batch upserts, queries by type, `q` and geometry, attribute
updates, a subscription whose notification reaches the test's receiver, and deletes.
`filip` has no Temporal API client, so history is read by the other libraries' tests."""

import pytest
import requests
from filip.clients.ngsi_ld.cb import ContextBrokerLDClient
from filip.models.base import FiwareLDHeader
from filip.models.ngsi_ld.context import ActionTypeLD, ContextLDEntity, ContextProperty
from filip.models.ngsi_ld.subscriptions import (
    Endpoint,
    EntityInfo,
    NotificationParams,
    SubscriptionLD,
)

import smartdatamodels as sdm


@pytest.fixture
def client(broker, receiver, tenant):
    header = FiwareLDHeader(ngsild_tenant=tenant)
    header.set_context(receiver.context_url)
    with ContextBrokerLDClient(url=broker.url, fiware_header=header) as c:
        yield c


def entities(rows):
    return [ContextLDEntity(**row) for row in rows]


def by_id(items):
    return {e.id: e for e in items}


def test_create_and_retrieve_round_trip(client):
    marina = sdm.car_parks()[0]
    location = client.post_entity(ContextLDEntity(**marina))
    assert location.endswith(marina["id"])

    got = client.get_entity(marina["id"])
    assert got.id == marina["id"]
    assert got.type == "OffStreetParking"
    attrs = got.model_dump()
    assert attrs["name"]["value"] == "Marina Square car park"
    assert attrs["totalSpotNumber"]["value"] == 860
    assert attrs["availableSpotNumber"]["value"] == 121
    assert attrs["availableSpotNumber"]["observedAt"] == "2024-05-06T08:00:00Z"
    assert attrs["category"]["value"] == ["public", "feeCharged", "underground"]
    assert attrs["address"]["value"] == {"addressCountry": "SG", "addressLocality": "Singapore"}
    assert list(attrs["location"]["value"]["coordinates"]) == [103.8578, 1.2912]

    simple = client.get_entity(marina["id"], options="keyValues").model_dump()
    assert simple["availableSpotNumber"] == 121
    assert list(simple["location"]["coordinates"]) == [103.8578, 1.2912]

    with pytest.raises(requests.HTTPError) as err:
        client.post_entity(ContextLDEntity(**marina))
    assert err.value.response.status_code == 409


def test_batch_upsert_creates_then_replaces(client):
    client.entity_batch_operation(
        entities=entities(sdm.car_parks() + sdm.air_quality_stations()),
        action_type=ActionTypeLD.CREATE,
    )
    assert len(client.get_entity_list(entity_type="OffStreetParking")) == 4
    assert len(client.get_entity_list(entity_type="AirQualityObserved")) == 2

    later = [
        sdm.off_street_parking(*row[:5], free=row[5] // 2, observed="2024-05-06T09:00:00Z")
        for row in sdm.CAR_PARKS
    ]
    client.override_entities(entities(later))

    parks = by_id(client.get_entity_list(entity_type="OffStreetParking"))
    assert len(parks) == 4
    for suffix, *_, free in sdm.CAR_PARKS:
        attr = parks[sdm.parking_id(suffix)].model_dump()["availableSpotNumber"]
        assert attr["value"] == free // 2
        assert attr["observedAt"] == "2024-05-06T09:00:00Z"


def test_queries_by_type_q_and_geometry(client):
    client.override_entities(entities(sdm.car_parks() + sdm.air_quality_stations()))

    # filip's default listing: every entity, `idPattern=.*` and nothing else.
    assert len(client.get_entity_list()) == 6

    free = client.get_entity_list(entity_type="OffStreetParking", q="availableSpotNumber>100")
    assert sorted(e.id for e in free) == sorted(
        sdm.parking_id(s) for s in ("SG-MarinaSquare", "SG-SuntecCity", "SG-Changi-T3")
    )
    polluted = client.get_entity_list(entity_type="AirQualityObserved", q="no2>30")
    assert [e.id for e in polluted] == ["urn:ngsi-ld:AirQualityObserved:SG-Marina"]
    moderate = client.get_entity_list(q='airQualityLevel=="moderate"')
    assert [e.id for e in moderate] == ["urn:ngsi-ld:AirQualityObserved:SG-Marina"]

    near = client.get_entity_list(
        entity_type="OffStreetParking",
        georel="near;maxDistance==1000",
        geometry="Point",
        coordinates=f"[{sdm.MARINA[0]},{sdm.MARINA[1]}]",
    )
    assert sorted(e.id for e in near) == [
        sdm.parking_id("SG-MarinaSquare"),
        sdm.parking_id("SG-SuntecCity"),
    ]
    within = client.get_entity_list(
        georel="within",
        geometry="Polygon",
        coordinates=str([sdm.MARINA_BAY]).replace(" ", ""),
    )
    assert sorted(e.id for e in within) == [
        "urn:ngsi-ld:AirQualityObserved:SG-Marina",
        sdm.parking_id("SG-MarinaSquare"),
        sdm.parking_id("SG-SuntecCity"),
    ]

    page = client.get_entity_list(entity_type="OffStreetParking", limit=2)
    assert len(page) == 2
    assert len(client.get_entity_list(entity_type="OffStreetParking", attrs=["name"])) == 4


def test_updates_attributes(client):
    marina = sdm.car_parks()[0]
    client.post_entity(ContextLDEntity(**marina))
    eid = marina["id"]

    client.update_entity_attribute(
        eid, ContextProperty(value=99), attr_name="availableSpotNumber"
    )
    assert client.get_entity(eid).model_dump()["availableSpotNumber"]["value"] == 99

    client.append_entity_attributes(
        ContextLDEntity(id=eid, type="OffStreetParking", status={"type": "Property", "value": "closed"})
    )
    assert client.get_entity(eid).model_dump()["status"]["value"] == "closed"

    client.replace_existing_attributes_of_entity(
        ContextLDEntity(
            id=eid,
            type="OffStreetParking",
            totalSpotNumber={"type": "Property", "value": 900},
            availableSpotNumber={"type": "Property", "value": 300},
        )
    )
    attrs = client.get_entity(eid).model_dump()
    assert attrs["totalSpotNumber"]["value"] == 900
    assert attrs["availableSpotNumber"]["value"] == 300
    assert attrs["name"]["value"] == "Marina Square car park"

    client.delete_attribute(eid, "status")
    assert "status" not in client.get_entity(eid).model_dump()


def test_subscription_notifies_and_unsubscribes(client, receiver, tenant):
    marina = sdm.car_parks()[0]
    client.post_entity(ContextLDEntity(**marina))
    path = f"/filip/{tenant}"

    subscription = SubscriptionLD(
        description="free spots at Singapore's car parks",
        entities=[EntityInfo(type="OffStreetParking")],
        watchedAttributes=["availableSpotNumber"],
        notification=NotificationParams(
            attributes=["availableSpotNumber"],
            endpoint=Endpoint(uri=f"{receiver.url}{path}", accept="application/json"),
        ),
    )
    sid = client.post_subscription(subscription)
    assert [s.id for s in client.get_subscription_list()] == [sid]
    # Posting the same subscription again finds it (filip lists with `options=count`).
    assert client.post_subscription(subscription) == sid
    assert client.get_subscription(sid).watchedAttributes == ["availableSpotNumber"]

    client.update_entity_attribute(marina["id"], ContextProperty(value=42), attr_name="availableSpotNumber")

    def spots(n):
        return lambda body: any(
            e.get("availableSpotNumber", {}).get("value") == n for e in body.get("data", [])
        )

    note = receiver.wait(path, spots(42))
    assert note["body"]["subscriptionId"] == sid
    assert note["body"]["type"] == "Notification"
    [entity] = note["body"]["data"]
    assert entity["id"] == marina["id"]
    assert "name" not in entity

    changed = client.get_subscription(sid)
    changed.description = "renamed"
    client.update_subscription(changed)
    assert client.get_subscription(sid).description == "renamed"

    client.delete_subscription(sid)
    assert client.get_subscription_list() == []
    with pytest.raises(requests.HTTPError) as err:
        client.get_subscription(sid)
    assert err.value.response.status_code == 404


def test_deletes_entities(client):
    client.entity_batch_operation(
        entities=entities(sdm.car_parks() + sdm.air_quality_stations()),
        action_type=ActionTypeLD.UPSERT,
    )
    marina = sdm.parking_id("SG-MarinaSquare")
    client.delete_entity_by_id(marina)
    with pytest.raises(requests.HTTPError) as err:
        client.get_entity(marina)
    assert err.value.response.status_code == 404

    rest = client.get_entity_list(entity_type="OffStreetParking")
    assert len(rest) == 3
    client.entity_batch_operation(entities=rest, action_type=ActionTypeLD.DELETE)
    assert client.get_entity_list(entity_type="OffStreetParking") == []
    assert len(client.get_entity_list()) == 2
