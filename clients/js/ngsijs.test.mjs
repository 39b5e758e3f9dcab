// Ficodes' `ngsijs` (1.4.1) drives the broker as an application does: Singapore's car parks
// and air-quality stations as Smart Data Models entities, queries by type, `q` and geometry,
// attribute updates (its appends are merge-patch), a subscription whose notification reaches
// the test's receiver, the temporal history, types and deletes. `ngsijs` has no batch
// operations and cannot give a @context to its attribute updates, so these entities use the
// core context's default vocabulary (docs/clients.md).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import NGSI from "ngsijs";

import { startBroker, startReceiver } from "./harbor.mjs";
import * as sdm from "./smartdatamodels.mjs";

let broker;
let receiver;
let ld;

before(async () => {
  broker = await startBroker();
  receiver = await startReceiver();
  ld = new NGSI.Connection(broker.url).ld;
});

after(async () => {
  await receiver?.stop();
  await broker?.stop();
});

/** A test with a tenant of its own, and the broker's log when it fails. */
function brokerTest(name, body) {
  test(name, async () => {
    const tenant = name.replace(/\W/g, "_").slice(-50);
    try {
      await body(tenant);
    } catch (e) {
      e.message += `\n--- broker log (last lines) ---\n${broker.logTail()}`;
      throw e;
    }
  });
}

async function createAll(tenant, entities) {
  for (const e of entities) await ld.createEntity(e, { tenant });
}

const ids = (results) => results.map((e) => e.id).sort();

brokerTest("creates and retrieves a car park unchanged", async (tenant) => {
  const marina = sdm.carParks()[0];
  const created = await ld.createEntity(structuredClone(marina), { tenant });
  assert.match(created.location, /urn:ngsi-ld:OffStreetParking:SG-MarinaSquare$/);

  const { entity } = await ld.getEntity({ id: marina.id, tenant });
  for (const key of ["id", "type", "name", "category", "totalSpotNumber", "address", "location"]) {
    assert.deepEqual(entity[key], marina[key], key);
  }
  assert.equal(entity.availableSpotNumber.value, 121);
  assert.equal(entity.availableSpotNumber.observedAt, "2024-05-06T08:00:00Z");

  const simple = await ld.getEntity({ id: marina.id, tenant, keyValues: true });
  assert.equal(simple.entity.availableSpotNumber, 121);
  assert.deepEqual(simple.entity.location, marina.location.value);

  await assert.rejects(ld.createEntity(structuredClone(marina), { tenant }), NGSI.AlreadyExistsError);
});

brokerTest("queries by type, q and geometry", async (tenant) => {
  await createAll(tenant, [...sdm.carParks(), ...sdm.airQualityStations()]);

  // Without a type, ngsijs lists with `idPattern=.*`.
  const all = await ld.queryEntities({ tenant, count: true, limit: 100 });
  assert.equal(all.count, 6);
  assert.equal(all.results.length, 6);

  const parks = await ld.queryEntities({ tenant, type: "OffStreetParking", count: true });
  assert.equal(parks.count, 4);

  const free = await ld.queryEntities({ tenant, type: "OffStreetParking", q: "availableSpotNumber>100" });
  assert.deepEqual(ids(free.results), ["SG-Changi-T3", "SG-MarinaSquare", "SG-SuntecCity"].map(sdm.parkingId).sort());

  const polluted = await ld.queryEntities({ tenant, type: "AirQualityObserved", q: 'no2>30;airQualityLevel=="moderate"' });
  assert.deepEqual(ids(polluted.results), ["urn:ngsi-ld:AirQualityObserved:SG-Marina"]);

  const near = await ld.queryEntities({
    tenant,
    type: "OffStreetParking",
    georel: "near;maxDistance==1000",
    geometry: "Point",
    coordinates: JSON.stringify(sdm.MARINA),
  });
  assert.deepEqual(ids(near.results), [sdm.parkingId("SG-MarinaSquare"), sdm.parkingId("SG-SuntecCity")]);

  const within = await ld.queryEntities({
    tenant,
    type: ["OffStreetParking", "AirQualityObserved"],
    georel: "within",
    geometry: "Polygon",
    coordinates: JSON.stringify([sdm.MARINA_BAY]),
  });
  assert.deepEqual(ids(within.results), [
    "urn:ngsi-ld:AirQualityObserved:SG-Marina",
    sdm.parkingId("SG-MarinaSquare"),
    sdm.parkingId("SG-SuntecCity"),
  ]);

  const page = await ld.queryEntities({ tenant, type: "OffStreetParking", limit: 3, offset: 2, keyValues: true, attrs: "name" });
  assert.equal(page.results.length, 2);
  for (const e of page.results) assert.equal(typeof e.name, "string");
});

brokerTest("updates, appends and deletes attributes", async (tenant) => {
  const orchard = sdm.offStreetParking(sdm.CAR_PARKS[2]);
  await ld.createEntity(structuredClone(orchard), { tenant });

  const updated = await ld.updateEntityAttributes(
    { availableSpotNumber: { type: "Property", value: 0, observedAt: "2024-05-06T09:00:00Z" } },
    { id: orchard.id, tenant },
  );
  assert.deepEqual(updated.updated, ["availableSpotNumber"]);

  await ld.updateEntityAttribute({ value: "full" }, { id: orchard.id, attribute: "status", tenant });

  // Append Attributes: ngsijs sends this as application/merge-patch+json.
  const appended = await ld.appendEntityAttributes(
    { id: orchard.id, chargeType: { type: "Property", value: ["flat"] } },
    { tenant },
  );
  assert.deepEqual(appended.notUpdated, []);

  let { entity } = await ld.getEntity({ id: orchard.id, tenant });
  assert.equal(entity.availableSpotNumber.value, 0);
  assert.equal(entity.status.value, "full");
  assert.deepEqual(entity.chargeType.value, ["flat"]);
  assert.equal(entity.totalSpotNumber.value, 500);

  const kept = await ld.appendEntityAttributes(
    { id: orchard.id, status: { type: "Property", value: "open" } },
    { tenant, noOverwrite: true },
  );
  assert.equal(kept.notUpdated.length, 1);

  await ld.deleteEntityAttribute({ id: orchard.id, attribute: "chargeType", tenant });
  ({ entity } = await ld.getEntity({ id: orchard.id, tenant }));
  assert.equal(entity.status.value, "full");
  assert.equal("chargeType" in entity, false);
});

brokerTest("subscribes, is notified and unsubscribes", async (tenant) => {
  await createAll(tenant, sdm.airQualityStations());
  const path = `/ngsijs/${tenant}`;

  const { subscription } = await ld.createSubscription(
    {
      type: "Subscription",
      description: "NO2 at Singapore's stations",
      entities: [{ type: "AirQualityObserved" }],
      watchedAttributes: ["no2"],
      q: "no2>40",
      notification: {
        attributes: ["no2", "airQualityLevel"],
        format: "keyValues",
        endpoint: { uri: `${receiver.url}${path}`, accept: "application/json" },
      },
    },
    { tenant },
  );
  const sid = subscription.id;
  assert.match(sid, /^urn:/);

  const listed = await ld.listSubscriptions({ tenant, count: true });
  assert.equal(listed.count, 1);
  assert.equal(listed.results[0].id, sid);

  await ld.updateEntityAttributes(
    { no2: { type: "Property", value: 63.0, unitCode: "GQ", observedAt: "2024-05-06T09:00:00Z" } },
    { id: "urn:ngsi-ld:AirQualityObserved:SG-Clementi", tenant },
  );
  const note = await receiver.wait(path, (b) => b.data?.some((e) => e.no2 === 63.0));
  assert.equal(note.body.subscriptionId, sid);
  assert.equal(note.body.type, "Notification");
  assert.deepEqual(note.body.data, [
    { id: "urn:ngsi-ld:AirQualityObserved:SG-Clementi", type: "AirQualityObserved", no2: 63.0, airQualityLevel: "good" },
  ]);
  assert.match(note.headers["content-type"], /^application\/json/);

  // Pausing goes through a merge-patch PATCH.
  await ld.updateSubscription({ id: sid, isActive: false }, { tenant });
  const paused = await ld.getSubscription({ id: sid, tenant });
  assert.equal(paused.subscription.isActive, false);
  assert.equal(paused.subscription.status, "paused");

  await ld.deleteSubscription({ id: sid, tenant });
  await assert.rejects(ld.getSubscription({ id: sid, tenant }), NGSI.NotFoundError);
  assert.equal((await ld.listSubscriptions({ tenant, count: true })).count, 0);
});

brokerTest("reads the temporal history", async (tenant) => {
  const marina = sdm.carParks()[0];
  await ld.createEntity(structuredClone(marina), { tenant });
  for (const [hour, free] of [[9, 80], [10, 35]]) {
    await ld.updateEntityAttributes(
      { availableSpotNumber: { type: "Property", value: free, observedAt: `2024-05-06T${String(hour).padStart(2, "0")}:00:00Z` } },
      { id: marina.id, tenant },
    );
  }

  const history = await ld.queryTemporalEntities({
    tenant,
    type: "OffStreetParking",
    attrs: "availableSpotNumber",
    temporalValues: true,
    count: true,
  });
  assert.equal(history.count, 1);
  const [troe] = history.results;
  assert.equal(troe.id, marina.id);
  const values = [...troe.availableSpotNumber.values].sort((a, b) => a[1].localeCompare(b[1]));
  assert.deepEqual(values, [
    [121, "2024-05-06T08:00:00Z"],
    [80, "2024-05-06T09:00:00Z"],
    [35, "2024-05-06T10:00:00Z"],
  ]);

  const window = await ld.queryTemporalEntities({
    tenant,
    type: "OffStreetParking",
    attrs: "availableSpotNumber",
    timerel: "between",
    timeAt: "2024-05-06T08:30:00Z",
    endTimeAt: "2024-05-06T09:30:00Z",
  });
  const instances = window.results[0].availableSpotNumber;
  assert.deepEqual(Array.isArray(instances) ? instances.map((i) => i.value) : [instances.value], [80]);

  // A temporal entity written through the Temporal API, and its history added to.
  const station = "urn:ngsi-ld:AirQualityObserved:SG-Marina";
  await ld.createTemporalEntity(
    {
      id: station,
      type: "AirQualityObserved",
      no2: [
        { type: "Property", value: 40.0, observedAt: "2024-05-06T07:00:00Z" },
        { type: "Property", value: 44.0, observedAt: "2024-05-06T08:00:00Z" },
      ],
    },
    { tenant },
  );
  await ld.addTemporalEntityAttributes(
    { id: station, no2: [{ type: "Property", value: 47.5, observedAt: "2024-05-06T09:00:00Z" }] },
    { tenant },
  );
  const no2 = await ld.queryTemporalEntities({ tenant, type: "AirQualityObserved", attrs: "no2", temporalValues: true });
  assert.deepEqual(
    no2.results[0].no2.values.map(([v]) => v).sort((a, b) => a - b),
    [40.0, 44.0, 47.5],
  );
});

brokerTest("lists types and deletes entities", async (tenant) => {
  await createAll(tenant, [...sdm.carParks(), ...sdm.airQualityStations()]);

  const types = await ld.listTypes({ tenant });
  assert.deepEqual([...types.results.typeList].sort(), ["AirQualityObserved", "OffStreetParking"]);
  const parking = await ld.getType({ type: "OffStreetParking", tenant });
  assert.equal(parking.type.entityCount, 4);

  for (const [suffix] of sdm.CAR_PARKS) await ld.deleteEntity({ id: sdm.parkingId(suffix), tenant });
  await assert.rejects(ld.getEntity({ id: sdm.parkingId("SG-MarinaSquare"), tenant }), NGSI.NotFoundError);
  const rest = await ld.queryEntities({ tenant, count: true });
  assert.equal(rest.count, 2);
  assert.deepEqual(ids(rest.results), ["urn:ngsi-ld:AirQualityObserved:SG-Clementi", "urn:ngsi-ld:AirQualityObserved:SG-Marina"]);
});
