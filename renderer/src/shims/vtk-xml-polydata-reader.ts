/**
 * Cornerstone's Mesh cache imports vtk.js's XML reader, which pulls in xmlbuilder2 and Node's
 * `events`; in a browser bundle that crashes at load time. The workstation never loads meshes,
 * so the reader is replaced by one that says so if it is ever called.
 */
const vtkXMLPolyDataReader = {
  newInstance(): never {
    throw new Error('mesh (VTP) loading is not part of this build');
  },
};
export default vtkXMLPolyDataReader;
