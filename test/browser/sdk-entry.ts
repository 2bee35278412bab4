// What the browser bundle imports: the SDK's public entry, nothing else.
export { connect } from '../../src/client/index.ts';
